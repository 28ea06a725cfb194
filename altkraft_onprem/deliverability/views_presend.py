"""The pre-send checks in the UI: JSON for the message editor's "Pre-send checks" tab and the
campaign page (static/presend.js renders it). Routes on the deliverability blueprint."""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.i18n import N_

from . import presend
from .views_checks import blueprint

TITLES = {
    "spam_score": N_("Spam score (SpamAssassin)"),
    "spam_score_unavailable": N_("No spam score"),
    "link_domain_listed": N_("A link's domain is on a blocklist"),
    "link_domains_unchecked": N_("Link domains not checked"),
    "no_text_part": N_("No plain-text part"),
    "gmail_clipping": N_("Gmail clips the message (over 102 KB)"),
    "image_text_ratio": N_("Much image, little text"),
    "dkim_not_verified": N_("DKIM signature does not verify"),
    "dkim_unchecked": N_("DKIM signature not checked"),
    "no_unsubscribe_link": N_("No unsubscribe link in the message"),
    "not_composed": N_("The message could not be composed"),
}
SEVERITY_LABELS = {"info": N_("note"), "warning": N_("warning"), "block": N_("blocks the start")}


def _answer(found: list[presend.Finding], version: int, from_email: str):
    return jsonify(version=version, from_email=from_email, blocked=bool(presend.blocked(found)),
                   findings=[{**f.as_dict(), "title": _(TITLES[f.code]),
                              "severity_label": _(SEVERITY_LABELS[f.severity])} for f in found],
                   none=_("Nothing to report: no finding."))


@blueprint.route("/deliverability/messages/<int:message_id>/checks")
@requires("messages:read")
def message_checks(message_id: int):
    settings = current_settings()
    sender = (request.args.get("from_email") or "").strip()
    if "@" not in sender:
        sender = presend.default_from(settings)
    try:
        with db.read(db.get_engine()) as conn:
            row = presend.message_version(conn, message_id)
    except ServiceError as exc:
        return jsonify(error=exc.translated()), 404
    return _answer(presend.check_version(settings, row, sender), row["version"], sender)


@blueprint.route("/deliverability/campaigns/<int:campaign_id>/checks")
@requires("campaigns:read")
def campaign_checks(campaign_id: int):
    try:
        with db.read(db.get_engine()) as conn:
            found = presend.campaign_message(conn, campaign_id)
    except ServiceError as exc:
        return jsonify(error=exc.translated()), 404
    return _answer(presend.check_campaign(current_settings(), found), found["version"]["version"],
                   found["campaign"]["from_email"])
