"""The "view in browser" links: `{{ view_in_browser_url }}` leads to /p/view/<token>, where
sending/webview.py shows a campaign's message as that recipient got it.

The token is [campaign id, subscriber id, version id] (3 × 4 bytes) and the first 12 bytes of
an HMAC-SHA256 over them with a key derived from the app secret for this use only, urlsafe
base64 (32 characters); a changed or foreign token is a plain 404.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

from altkraft_onprem.audience.links import LinkError, _base, _secret
from altkraft_onprem.config import Settings

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
