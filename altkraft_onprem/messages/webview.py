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


def _mac(settings: Settings, purpose: bytes = b"altkraft-view-v1") -> hmac.HMAC:
    key = hmac.new(_secret(settings), purpose, hashlib.sha256).digest()
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
    return _read(settings, token, _IDS, b"altkraft-view-v1", MAC_BYTES)


def _read(settings: Settings, token: str, ids: struct.Struct, purpose: bytes,
          mac_bytes: int) -> tuple[int, ...]:
    """The ids a token of this kind carries; LinkError unless we signed it for `purpose`."""
    if len(token) != _TOKEN_CHARS or not token.isascii():
        raise LinkError("this link is not valid")
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        raise LinkError("this link is not valid") from None
    body, signature = raw[:ids.size], raw[ids.size:]
    mac = _mac(settings, purpose)
    mac.update(body)
    if not hmac.compare_digest(mac.digest()[:mac_bytes], signature):
        raise LinkError("this link is not valid")
    values = ids.unpack(body)
    if not all(0 < value < 2**31 for value in values):
        raise LinkError("this link is not valid")
    return values


# The public archive's copies (/archive/SLUG/TOKEN, sending/archive.py): [campaign id, version
# id] and 16 bytes of an HMAC with a key of its own (a view token is no archive token), 32
# characters. Nothing personal in it: the copy is rendered for a placeholder recipient.
_ARCHIVE_IDS = struct.Struct(">II")
_ARCHIVE_PURPOSE = b"altkraft-archive-v1"
_ARCHIVE_MAC_BYTES = 16


def archive_token(settings: Settings, campaign_id: int, version_id: int) -> str:
    body = _ARCHIVE_IDS.pack(campaign_id, version_id)
    mac = _mac(settings, _ARCHIVE_PURPOSE)
    mac.update(body)
    return base64.urlsafe_b64encode(body + mac.digest()[:_ARCHIVE_MAC_BYTES]).decode("ascii")


def read_archive_token(settings: Settings, token: str) -> tuple[int, int]:
    """(campaign id, version id); LinkError for anything we did not sign."""
    return _read(settings, token, _ARCHIVE_IDS, _ARCHIVE_PURPOSE, _ARCHIVE_MAC_BYTES)
