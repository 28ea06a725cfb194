"""Signed public links: unsubscribe, preference center, double opt-in confirmation.

Tokens are itsdangerous signatures over a compact payload with the app's secret key; a
tampered token is refused, a confirmation token expires after `audience.confirm_hours`.
The pages live under /p/ (public, no login) in audience/public.py.
"""
from __future__ import annotations

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from altkraft_onprem.config import Settings

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
    from altkraft_onprem.app import read_secret_key

    path = str(settings.secret_key_path)
    if path not in _SECRETS:
        _SECRETS[path] = read_secret_key(settings)
    return _SECRETS[path]


def _plain(settings: Settings, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(_secret(settings), salt=salt)


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
