"""The "view in browser" page: `{{ view_in_browser_url }}` leads to /p/view/<token>, which shows
a campaign's message as that recipient got it.

The token is an itsdangerous signature (the app secret, its own salt) over
[campaign id, subscriber id, version id]; a changed or foreign token is a plain 404. The page
is the sender's own output: the campaign's Composer builds the recipient's message (pinned
version, their personalisation, signed click links, unsubscribe links) exactly as a send
does, and the HTML part is taken from it, minus the open pixel (looking at the web copy is
not an open of the email). The page never redirects anywhere; its links are the email's.
The subscriber's fields are read when the page is opened, so a later change of their name
shows in the web copy too.
"""
from __future__ import annotations

from email import message_from_bytes, policy
from html import escape

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Connection, select

from altkraft_onprem.audience.links import LinkError, _base, _secret
from altkraft_onprem.config import Settings

from .render import TemplateProblem

SALT_VIEW = "altkraft.view"


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(_secret(settings), salt=SALT_VIEW)


class ViewLinks:
    """View-in-browser URLs of one campaign version, serializer built once: the sender asks
    for one per recipient (`links.url(subscriber_id)`, a few microseconds)."""

    def __init__(self, settings: Settings, campaign_id: int, version_id: int):
        self._serializer = _serializer(settings)
        self._prefix = f"{_base(settings)}/p/view/"
        self._campaign_id, self._version_id = campaign_id, version_id

    def url(self, subscriber_id: int) -> str:
        token = self._serializer.dumps([self._campaign_id, subscriber_id, self._version_id])
        return self._prefix + token


def view_url(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    return ViewLinks(settings, campaign_id, version_id).url(subscriber_id)


def read_view_token(settings: Settings, token: str) -> tuple[int, int, int]:
    """(campaign id, subscriber id, version id); LinkError for anything we did not sign."""
    if len(token) > 200:
        raise LinkError("this link is not valid")
    try:
        value = _serializer(settings).loads(token)
    except BadSignature:
        raise LinkError("this link is not valid") from None
    if not isinstance(value, list) or len(value) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31 for v in value):
        raise LinkError("this link is not valid")
    return value[0], value[1], value[2]


def render_as_sent(conn: Connection, settings: Settings, campaign_id: int, subscriber_id: int,
                   version_id: int) -> str | None:
    """The HTML the recipient got, or None when the campaign, its version or the recipient
    is gone (deleted, erased) or this person was never part of the campaign."""
    # Campaigns and delivery build on messages; imported here so that messages stays below them.
    from altkraft_onprem.audience.subscribers import render_context
    from altkraft_onprem.campaigns.service import composer
    from altkraft_onprem.delivery.errors import DeliveryError
    from altkraft_onprem.errors import NotFound
    from altkraft_onprem.tracking.tokens import pixel_html

    if not was_recipient(conn, campaign_id, subscriber_id, version_id):
        return None
    person = render_context(conn, [subscriber_id]).get(subscriber_id)
    if person is None:
        return None
    try:
        builder = composer(conn, settings, campaign_id)
    except NotFound:
        return None
    try:
        outgoing = builder.compose(person)
    except (TemplateProblem, DeliveryError):
        return None         # it could not have been sent like this either
    parsed = message_from_bytes(outgoing.data, policy=policy.default)
    part = parsed.get_body(preferencelist=("html", "plain"))
    if part is None:
        return None
    body = part.get_content()
    if part.get_content_type() == "text/plain":
        return f"<!doctype html><meta charset=utf-8><pre>{escape(body)}</pre>"
    if builder.track_opens:
        body = body.replace(pixel_html(settings, campaign_id, subscriber_id, version_id), "")
    return body


def was_recipient(conn: Connection, campaign_id: int, subscriber_id: int, version_id: int) -> bool:
    """Is this person in the campaign's delivery ledger, and was this the version it sent?"""
    from altkraft_onprem.campaigns.models import campaigns, deliveries

    query = (select(deliveries.c.id).join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
             .where(deliveries.c.campaign_id == campaign_id)
             .where(deliveries.c.subscriber_id == subscriber_id)
             .where(campaigns.c.version_id == version_id))
    return conn.execute(query).first() is not None
