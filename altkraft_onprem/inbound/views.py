"""Deliverability -> Inbound mail: the intake of each way in, bounces and complaints with
filters, the raw message viewer, reclassify, audited unsuppress, the Unmatched inbox, alerts."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.audience.suppression import unsuppress_address
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery.providers import PROVIDER_LABELS
from altkraft_onprem.errors import NotFound, ServiceError

from . import bounces as feedback
from . import dmarc, monitor, overview, service
from .models import ALERT_LABELS, BOUNCE_CLASSES, CLASS_LABELS, STATE_LABELS

blueprint = Blueprint("inbound", __name__)
PAGE = 50


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and int(value) < 2**31 else None


def _filters() -> dict:
    bounce_class = request.args.get("class", "")
    days = _int_arg("days")
    return {"campaign_id": _int_arg("campaign"),
            "bounce_class": bounce_class if bounce_class in BOUNCE_CLASSES else None,
            "since": datetime.now(UTC) - timedelta(days=days) if days else None,
            "days": days}


@blueprint.route("/deliverability/inbound")
@requires("deliverability:read")
def index():
    filters = _filters()
    labels = {**{k: _(v) for k, v in STATE_LABELS.items()}}
    with db.read(db.get_engine()) as conn:
        context = {
            "intake": overview.intake_status(conn, current_settings()),
            "alerts": monitor.list_alerts(conn, limit=20),
            "bounces": feedback.list_bounces(conn, campaign_id=filters["campaign_id"],
                                             bounce_class=filters["bounce_class"],
                                             since=filters["since"], limit=PAGE),
            "complaints": feedback.list_complaints(conn, campaign_id=filters["campaign_id"],
                                                   since=filters["since"], limit=PAGE),
            "unmatched": overview.waiting_for_people(conn, limit=PAGE),
            "dmarc": dmarc.summary(conn),
        }
    days = context["dmarc"]["days"]
    charts = {"dmarc": {"type": "bar", "data": {
        "labels": [d["day"] for d in days],
        "datasets": [{"label": _("DMARC pass"), "data": [d["passed"] for d in days]},
                     {"label": _("DMARC fail"), "data": [d["failed"] for d in days]}]},
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True}}}}}
    return render_template(
        "inbound/index.html", filters=filters, classes=BOUNCE_CLASSES,
        class_labels={k: _(v) for k, v in CLASS_LABELS.items()}, state_labels=labels,
        alert_labels={k: _(v) for k, v in ALERT_LABELS.items()},
        provider_labels={k: _(v) for k, v in PROVIDER_LABELS.items()}, charts=charts, **context)


@blueprint.route("/deliverability/inbound/messages/<int:inbound_id>")
@requires("deliverability:read")
def message(inbound_id: int):
    with db.read(db.get_engine()) as conn:
        try:
            found = service.get_message(conn, inbound_id)
        except NotFound:
            abort(404)
    if request.args.get("raw") == "1":
        return Response(found["raw"], mimetype="text/plain",
                        headers={"Content-Disposition": f'attachment; filename="inbound-{inbound_id}.eml"',
                                 "X-Content-Type-Options": "nosniff"})
    text = found["raw"][:500_000].decode("utf-8", "replace")
    return render_template("inbound/message.html", m=found, text=text,
                           truncated=len(found["raw"]) > 500_000,
                           state_labels={k: _(v) for k, v in STATE_LABELS.items()})


@blueprint.route("/deliverability/inbound/bounces/<int:bounce_id>/reclassify", methods=["POST"])
@requires("subscribers:delete")
def reclassify(bounce_id: int):
    wanted = request.form.get("bounce_class") or None
    try:
        with db.write(db.get_engine()) as conn:
            found = feedback.reclassify(conn, g.actor, bounce_id, wanted)
    except NotFound:
        abort(404)
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(url_for("inbound.index"))
    flash(_("Bounce %(id)s is now %(class)s.", id=bounce_id,
            **{"class": _(CLASS_LABELS[found["bounce_class"]])}), "success")
    return redirect(url_for("inbound.index", _anchor="bounces"))


@blueprint.route("/deliverability/inbound/unsuppress", methods=["POST"])
@requires("subscribers:delete")
def unsuppress():
    email = request.form.get("email", "")
    try:
        with db.write(db.get_engine()) as conn:
            lifted = unsuppress_address(conn, g.actor, email, reason=request.form.get("reason", "")[:200])
    except (ServiceError, ValueError):
        lifted = False
    flash(_("%(email)s may receive mail again.", email=email) if lifted
          else _("%(email)s is not on the suppression list.", email=email),
          "success" if lifted else "error")
    return redirect(url_for("inbound.index", _anchor="bounces"))
