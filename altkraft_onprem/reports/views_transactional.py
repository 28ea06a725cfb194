"""The transactional report (/reports/transactional): sends per category and state over a
period, the carriers that are paused, the latest sends with their relay's answer. Its routes
are on the reports blueprint (app.py imports this module)."""
from __future__ import annotations

from datetime import timedelta

from flask import render_template, request

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.campaigns import transactional, transactional_report
from altkraft_onprem.campaigns.transactional_report import SEND_STATES
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow

from .views import _choice_arg, _int_arg, blueprint

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@blueprint.route("/transactional")
@requires("reports:read")
def transactional_sends():
    period = _choice_arg("period", tuple(PERIODS), "24h")
    state = request.args.get("state") or None
    if state is not None:
        state = _choice_arg("state", SEND_STATES, "queued")
    category = (request.args.get("category") or "").strip()[:64] or None
    email = (request.args.get("email") or "").strip()[:320] or None
    offset = _int_arg("offset") or 0
    since = utcnow() - PERIODS[period]
    with db.read(db.get_engine()) as conn:
        summary = transactional_report.summary(conn, since)
        carriers = transactional_report.carriers(conn)
        sends = transactional_report.list_sends(conn, state=state, category=category, email=email,
                                                since=since, limit=51, offset=offset)
    return render_template(
        "reports/transactional.html", summary=summary, carriers=carriers, sends=sends[:50],
        more=len(sends) > 50, offset=offset, period=period, periods=PERIODS, state=state,
        states=SEND_STATES, category=category, email=email,
        strict=transactional.strict_categories(current_settings()))
