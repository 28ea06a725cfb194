"""Signed public links: unsubscribe, preference center, double opt-in confirmation.

Tokens are itsdangerous signatures over a compact payload with the app's secret key; a
tampered token is refused, a confirmation token expires after `audience.confirm_hours`.
The pages live under /p/ (public, no login) in audience/public.py.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from altkraft_onprem.config import Settings, read_secret_key

SALT_UNSUBSCRIBE = "altkraft.unsubscribe"
SALT_PREFERENCES = "altkraft.preferences"
SALT_CONFIRM = "altkraft.confirm"


class LinkError(Exception):
    """A link that is not ours, was changed, or has expired (`expired`)."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


_SECRETS: dict[str, bytes] = {}


def _secret(settings: Settings) -> bytes:
    """The app's secret key, read once per key file (campaigns sign a link per recipient)."""
    path = str(settings.secret_key_path)
    if path not in _SECRETS:
        _SECRETS[path] = read_secret_key(settings)
    return _SECRETS[path]


def _plain(settings: Settings, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(_secret(settings), salt=salt)


class LinkSigner:
    """Signs many tokens of one kind, exactly as `URLSafeSerializer(secret, salt).dumps` does
    for a list of ids (compact JSON, urlsafe base64, HMAC-SHA1 under itsdangerous' default
    "django-concat" key), so the `read_*` functions read them back through itsdangerous. The
    campaign sender signs two per recipient: this skips making a signer and deriving its key
    on every call."""

    def __init__(self, settings: Settings, salt: str):
        self._serializer = _plain(settings, salt)
        key = hashlib.sha1(salt.encode() + b"signer" + _secret(settings)).digest()
        self._mac = hmac.new(key, digestmod=hashlib.sha1)

    def dumps(self, ids: list[int | None]) -> str:
        if not all(v is None or type(v) is int for v in ids):
            return self._serializer.dumps(ids)
        payload = ("[" + ",".join("null" if v is None else str(v) for v in ids) + "]").encode()
        # itsdangerous sends the payload compressed when zlib makes it 2 bytes shorter. zlib
        # adds 6 bytes and deflate needs at least 6 for "[", a digit, one match and "]", so
        # under 14 bytes that never happens (and trying costs more than all the rest).
        if len(payload) >= 14 and len(zlib.compress(payload)) < len(payload) - 1:
            return self._serializer.dumps(ids)
        encoded = base64.urlsafe_b64encode(payload).rstrip(b"=")
        mac = self._mac.copy()
        mac.update(encoded)
        return (encoded + b"." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode("ascii")


def _timed(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(settings), salt=SALT_CONFIRM)


def _base(settings: Settings) -> str:
    return settings["server.public_url"].rstrip("/")


def unsubscribe_token(settings: Settings, subscriber_id: int, list_id: int | None = None,
                      campaign_id: int | None = None) -> str:
    return _plain(settings, SALT_UNSUBSCRIBE).dumps([subscriber_id, list_id, campaign_id])


def unsubscribe_url(settings: Settings, subscriber_id: int, list_id: int | None = None,
                    campaign_id: int | None = None) -> str:
    return f"{_base(settings)}/p/u/{unsubscribe_token(settings, subscriber_id, list_id, campaign_id)}"


def preferences_url(settings: Settings, subscriber_id: int) -> str:
    token = _plain(settings, SALT_PREFERENCES).dumps([subscriber_id])
    return f"{_base(settings)}/p/preferences/{token}"


def confirm_url(settings: Settings, subscriber_id: int, list_id: int) -> str:
    token = _timed(settings).dumps([subscriber_id, list_id])
    return f"{_base(settings)}/p/confirm/{token}"


def _ints(value, size: int) -> list:
    if not isinstance(value, list) or len(value) != size or not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**31)
            for v in value) or value[0] is None:
        raise LinkError("this link is not valid")
    return value


def read_unsubscribe(settings: Settings, token: str) -> tuple[int, int | None, int | None]:
    try:
        return tuple(_ints(_plain(settings, SALT_UNSUBSCRIBE).loads(token), 3))
    except BadSignature:
        raise LinkError("this link is not valid") from None


def read_preferences(settings: Settings, token: str) -> int:
    try:
        return _ints(_plain(settings, SALT_PREFERENCES).loads(token), 1)[0]
    except BadSignature:
        raise LinkError("this link is not valid") from None


def read_confirm(settings: Settings, token: str) -> tuple[int, int]:
    try:
        value = _timed(settings).loads(token, max_age=settings["audience.confirm_hours"] * 3600)
    except SignatureExpired:
        raise LinkError("this confirmation link has expired", expired=True) from None
    except BadSignature:
        raise LinkError("this link is not valid") from None
    subscriber_id, list_id = _ints(value, 2)
    if list_id is None:
        raise LinkError("this link is not valid")
    return subscriber_id, list_id
