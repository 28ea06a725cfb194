"""Settings -> Sending domains: add a domain (its DKIM key is generated here), its page with
the records to publish, bounce and tracking domain, another key, rotation, removal."""
from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.warmup import domain_warmup
from altkraft_onprem.errors import NotFound, ServiceError

from . import domains
from .models import ALGORITHM_LABELS, ALGORITHMS, KEY_STATE_LABELS
from .views import blueprint, render_index


def _domain_page(domain_id: int, error: str | None = None, status: int = 200):
    with db.read(db.get_engine()) as conn:
        try:
            found = domains.get_domain(conn, domain_id)
        except NotFound:
            abort(404)
    settings = current_settings()
    return render_template(
        "settings/domain.html", domain=found, error=error, algorithms=ALGORITHMS,
        algorithm_labels=ALGORITHM_LABELS,
        state_labels={k: _(v) for k, v in KEY_STATE_LABELS.items()},
        has=lambda algorithm: any(k["algorithm"] == algorithm and k["state"] != "retiring"
                                  for k in found["keys"]),
        public_scheme=settings["server.public_url"].split(":", 1)[0],
        warmup=domain_warmup(settings, found["domain"], utcnow().date())), status


@blueprint.route("/settings/domains", methods=["POST"])
@requires("settings:manage")
def add_domain():
    algorithms = [a for a in request.form.getlist("dkim") if a in ALGORITHMS] or ["rsa-sha256"]
    try:
        with db.write(db.get_engine()) as conn:
            domain_id = domains.add_domain(
                conn, g.actor, current_settings(), request.form.get("domain", ""),
                bounce_domain=request.form.get("bounce_domain", ""),
                tracking_host=request.form.get("tracking_host", ""), algorithms=algorithms)
    except ServiceError as exc:
        return render_index(exc.translated(), 422, "domains")
    flash(_("Domain added. Publish its DKIM record, then activate the key."), "success")
    return redirect(url_for("settings.domain", domain_id=domain_id))


@blueprint.route("/settings/domains/<int:domain_id>")
@requires("settings:manage")
def domain(domain_id: int):
    return _domain_page(domain_id)


@blueprint.route("/settings/domains/<int:domain_id>", methods=["POST"])
@requires("settings:manage")
def update_domain(domain_id: int):
    try:
        with db.write(db.get_engine()) as conn:
            domains.update_domain(conn, g.actor, domain_id,
                                  bounce_domain=request.form.get("bounce_domain", ""),
                                  tracking_host=request.form.get("tracking_host", ""))
    except NotFound:
        abort(404)
    except ServiceError as exc:
        return _domain_page(domain_id, exc.translated(), 422)
    flash(_("Saved."), "success")
    return redirect(url_for("settings.domain", domain_id=domain_id))


@blueprint.route("/settings/domains/<int:domain_id>/warmup", methods=["POST"])
@requires("settings:manage")
def warmup_domain(domain_id: int):
    """The domain's warm-up on or off, and its first day (deliverability/warmup.py)."""
    try:
        with db.write(db.get_engine()) as conn:
            # An empty date field keeps the first day the domain has (today when it has none).
            started_on = request.form.get("warmup_started_on", "").strip() or None
            domains.update_domain(conn, g.actor, domain_id, warmup=request.form.get("warmup") == "on",
                                  warmup_started_on=started_on)
    except NotFound:
        abort(404)
    except ServiceError as exc:
        return _domain_page(domain_id, exc.translated(), 422)
    flash(_("Saved."), "success")
    return redirect(url_for("settings.domain", domain_id=domain_id))


@blueprint.route("/settings/domains/<int:domain_id>/delete", methods=["POST"])
@requires("settings:manage")
def delete_domain(domain_id: int):
    try:
        with db.write(db.get_engine()) as conn:
            domains.delete_domain(conn, g.actor, domain_id)
    except NotFound:
        abort(404)
    flash(_("Domain removed with its keys. Its DNS records may go too."), "success")
    return redirect(url_for("settings.index") + "#group-domains")


@blueprint.route("/settings/domains/<int:domain_id>/keys", methods=["POST"])
@requires("settings:manage")
def add_key(domain_id: int):
    algorithm = request.form.get("algorithm", "")
    action = request.form.get("action", "add")
    settings = current_settings()
    try:
        if action == "activate":
            domains.activate_published(db.get_engine(), g.actor, settings, domain_id, algorithm)
            flash(_("The new key signs from now on."), "success")
        elif action == "retire":
            with db.write(db.get_engine()) as conn:
                key = domains.retire(conn, g.actor, domain_id, algorithm)
            flash(_("The old key is removed: its DNS record (%(name)s) may go now.",
                    name=key["record_name"]), "success")
        else:
            with db.write(db.get_engine()) as conn:
                if action == "rotate":
                    domains.start_rotation(conn, g.actor, settings, domain_id, algorithm)
                else:
                    domains.add_key(conn, g.actor, settings, domain_id, algorithm)
            flash(_("New key made: publish its record, then activate it."), "success")
    except NotFound:
        abort(404)
    except ServiceError as exc:
        return _domain_page(domain_id, exc.translated(), 422)
    return redirect(url_for("settings.domain", domain_id=domain_id) + "#keys")

