"""The "view in browser" page: /p/view/<token> (messages/webview.py signs the links) shows a
campaign's message as that recipient got it.

The page is the sender's own output: the campaign's Composer builds the recipient's message
(pinned version, their personalisation, signed click links, unsubscribe links) exactly as a
send does, and the HTML part is taken from it, minus the open pixel (looking at the web copy
is not an open of the email). The page never redirects anywhere; its links are the email's.
The subscriber's fields are read when the page is opened, so a later change of their name
shows in the web copy too.
"""
from __future__ import annotations

from email import message_from_bytes, policy
from html import escape

from flask import Blueprint, Response, abort, render_template
from flask_babel import gettext as _
from sqlalchemy import Connection, select

from altkraft_onprem import db
from altkraft_onprem.access.policy import PUBLIC, requires
from altkraft_onprem.audience.links import LinkError
from altkraft_onprem.audience.subscribers import render_context
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.config import Settings, current_settings
from altkraft_onprem.delivery.errors import DeliveryError
from altkraft_onprem.errors import NotFound
from altkraft_onprem.messages import webview
from altkraft_onprem.messages.data import DataFetchError
from altkraft_onprem.messages.render import TemplateProblem
from altkraft_onprem.tracking.tokens import honeypot_html, pixel_html

from .compose import composers

blueprint = Blueprint("webview", __name__)

# The message's own HTML, from an email: nothing in it may run in the app's origin (sandbox
# without scripts, opaque origin), its links open as links do, images load from anywhere.
WEBVIEW_CSP = ("sandbox allow-popups allow-popups-to-escape-sandbox "
               "allow-top-navigation-by-user-activation; default-src 'none'; "
               "img-src https: http: data:; style-src 'unsafe-inline' https:; font-src https: data:")


@blueprint.route("/p/view/<token>")
@requires(PUBLIC)
def view_in_browser(token: str):
    if token == webview.PREVIEW_TOKEN:      # the link in previews and test sends
        return render_template("audience/public_done.html", title=_("View in browser"), message=_(
            "In a campaign email this link opens the web copy of the message as its recipient "
            "got it. Previews and test sends have no web copy."))
    try:
        campaign_id, subscriber_id, version_id = webview.read_view_token(current_settings(), token)
    except LinkError:
        abort(404)
    with db.read(db.get_engine()) as conn:
        html = render_as_sent(conn, current_settings(), campaign_id, subscriber_id, version_id)
    if html is None:
        abort(404)
    response = sandboxed(html, "private, no-store")
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def sandboxed(html: str, cache: str) -> Response:
    """A message's HTML as a page of its own: under WEBVIEW_CSP, never sniffed, no referrer."""
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = WEBVIEW_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = cache
    return response


def render_as_sent(conn: Connection, settings: Settings, campaign_id: int, subscriber_id: int,
                   version_id: int) -> str | None:
    """The HTML the recipient got, or None when the campaign, its version or the recipient
    is gone (deleted, erased) or this person was never part of the campaign."""
    builder = _composer_for(conn, settings, campaign_id, subscriber_id, version_id)
    if builder is None:
        return None
    person = render_context(conn, [subscriber_id]).get(subscriber_id)
    if person is None:
        return None
    try:
        builder.prepare_batch({subscriber_id: person})
        outgoing = builder.compose(person)
    except (TemplateProblem, DeliveryError, DataFetchError):
        return None         # it could not have been sent like this either
    parsed = message_from_bytes(outgoing.data, policy=policy.default)
    part = parsed.get_body(preferencelist=("html", "plain"))
    if part is None:
        return None
    body = part.get_content()
    if part.get_content_type() == "text/plain":
        return f"<!doctype html><meta charset=utf-8><pre>{escape(body)}</pre>"
    # What only the email carries: the open pixels, and the hidden link that marks whoever
    # fetches it as a machine (a crawler of this page must not mark the person's clicks).
    for extra in (pixel_html, honeypot_html):
        body = body.replace(extra(settings, campaign_id, subscriber_id, version_id), "")
    return body


def _composer_for(conn: Connection, settings: Settings, campaign_id: int, subscriber_id: int,
                  version_id: int):
    """The campaign's Composer for this recipient's ledger variant (split tests compile one
    per variant), provided that variant sent `version_id`; None otherwise."""
    row = conn.execute(select(deliveries.c.variant).where(deliveries.c.campaign_id == campaign_id)
                       .where(deliveries.c.subscriber_id == subscriber_id)).first()
    if row is None:
        return None
    try:
        builders = composers(conn, settings, campaign_id)
    except NotFound:
        return None
    # (A held row of an undecided split test has no variant yet: nothing was sent to it.)
    builder = builders.get(row.variant)
    if getattr(builder, "per_row", False):
        return None         # transactional mail (a password reset, say) has no web copy
    return builder if builder is not None and builder.version_id == version_id else None
