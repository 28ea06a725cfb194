"""The "view in browser" page: `{{ view_in_browser_url }}` leads to /p/view/<token>, which shows
a campaign's message as that recipient got it.

The token is [campaign id, subscriber id, version id] (3 × 4 bytes) and the first 12 bytes of
an HMAC-SHA256 over them with a key derived from the app secret for this use only, urlsafe
base64 (32 characters); a changed or foreign token is a plain 404. The page
is the sender's own output: the campaign's Composer builds the recipient's message (pinned
version, their personalisation, signed click links, unsubscribe links) exactly as a send
does, and the HTML part is taken from it, minus the open pixel (looking at the web copy is
not an open of the email). The page never redirects anywhere; its links are the email's.
The subscriber's fields are read when the page is opened, so a later change of their name
shows in the web copy too.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from email import message_from_bytes, policy
from html import escape

from sqlalchemy import Connection, select

from altkraft_onprem.audience.links import LinkError, _base, _secret
from altkraft_onprem.config import Settings

from .data import DataFetchError
from .render import TemplateProblem

PREVIEW_TOKEN = "preview"           # previews and test sends link here: no web copy exists
_IDS = struct.Struct(">III")        # campaign, subscriber, version
MAC_BYTES = 12
_TOKEN_CHARS = 32                   # base64 of 12 + 12 bytes


def _mac(settings: Settings) -> hmac.HMAC:
    key = hmac.new(_secret(settings), b"altkraft-view-v1", hashlib.sha256).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


class ViewLinks:
    """View-in-browser URLs of one campaign version. The sender asks for one per recipient,
    so the keyed HMAC state is made once and copied (about 2 µs a link)."""

    def __init__(self, settings: Settings, campaign_id: int, version_id: int):
        self._mac = _mac(settings)
        self._prefix = f"{_base(settings)}/p/view/"
        self._campaign_id, self._version_id = campaign_id, version_id

    def url(self, subscriber_id: int) -> str:
        body = _IDS.pack(self._campaign_id, subscriber_id, self._version_id)
        mac = self._mac.copy()
        mac.update(body)
        return self._prefix + base64.urlsafe_b64encode(body + mac.digest()[:MAC_BYTES]).decode("ascii")


def view_url(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    return ViewLinks(settings, campaign_id, version_id).url(subscriber_id)


def read_view_token(settings: Settings, token: str) -> tuple[int, int, int]:
    """(campaign id, subscriber id, version id); LinkError for anything we did not sign."""
    if len(token) != _TOKEN_CHARS or not token.isascii():
        raise LinkError("this link is not valid")
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        raise LinkError("this link is not valid") from None
    body, signature = raw[:_IDS.size], raw[_IDS.size:]
    mac = _mac(settings)
    mac.update(body)
    if not hmac.compare_digest(mac.digest()[:MAC_BYTES], signature):
        raise LinkError("this link is not valid")
    ids = _IDS.unpack(body)
    if not all(0 < value < 2**31 for value in ids):
        raise LinkError("this link is not valid")
    return ids


def render_as_sent(conn: Connection, settings: Settings, campaign_id: int, subscriber_id: int,
                   version_id: int) -> str | None:
    """The HTML the recipient got, or None when the campaign, its version or the recipient
    is gone (deleted, erased) or this person was never part of the campaign."""
    # Campaigns and delivery build on messages; imported here so that messages stays below them.
    from altkraft_onprem.audience.subscribers import render_context
    from altkraft_onprem.delivery.errors import DeliveryError
    from altkraft_onprem.tracking.tokens import honeypot_html, pixel_html

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
    from altkraft_onprem.campaigns.models import deliveries
    from altkraft_onprem.campaigns.service import composers
    from altkraft_onprem.errors import NotFound

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
    return builder if builder is not None and builder.version_id == version_id else None
