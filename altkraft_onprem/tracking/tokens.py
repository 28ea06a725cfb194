"""Short signed tracking tokens: /t/i/<token>, /t/c/<token> (and /t/o/, /t/r/ of older mail).

A message carries one tracking image, /t/i/: its request is the open, and how long its
response is held is the reading time. Mail sent before carries two 1x1 images, the open
pixel /t/o/ and the reading-time image /t/r/ — a pair that alone scores SpamAssassin's
HTML_IMAGE_ONLY_12 on a short message; their tokens keep working.

A token packs (kind, campaign, subscriber, version[, link index]) as unsigned LEB128 varints,
followed by the first 10 bytes of an HMAC-SHA256 over them with a key derived from the app
secret; urlsafe base64 without padding. A typical click token is ~24 characters. Anything
that does not verify decodes to None (the endpoints answer a plain 404): the click target is
never part of the token or the request, so there is nothing to redirect elsewhere.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from altkraft_onprem.config import Settings, read_secret_key

MAC_BYTES = 10
# The link index of the hidden honeypot link (no person can click it): see honeypot_html().
HONEYPOT_LINK = 16383
KINDS = {"o": 1, "r": 2, "c": 3, "i": 4}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
_MAX_TOKEN = 96          # longer input is rejected before any decoding work


@dataclass(frozen=True)
class Target:
    kind: str            # "i" tracking image, "c" click; older mail: "o" open, "r" read stream
    campaign_id: int
    subscriber_id: int
    version_id: int
    link_index: int | None = None


@lru_cache(maxsize=8)
def _derive(secret: bytes) -> bytes:
    return hmac.new(secret, b"altkraft-tracking-v1", hashlib.sha256).digest()


_KEYS: dict[int, tuple[Settings, bytes]] = {}


def tracking_key(settings: Settings) -> bytes:
    """Derived from the app secret; read once per Settings object (called per request and,
    by the campaign compiler, per link)."""
    cached = _KEYS.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    key = _derive(read_secret_key(settings))
    _KEYS[id(settings)] = (settings, key)
    return key


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("tracking ids are non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varints(data: bytes) -> list[int] | None:
    values, current, shift = [], 0, 0
    for byte in data:
        current |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
            continue
        values.append(current)
        current, shift = 0, 0
    return values if shift == 0 else None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _Signer:
    """The token format's signature, the one encoder: HMAC-SHA256 (RFC 2104) truncated to
    MAC_BYTES, after the body, urlsafe base64 without padding. The key's inner and outer
    states are hashed once and copied per token, several times cheaper than `hmac.new`."""

    def __init__(self, key: bytes):
        key = (key if len(key) <= 64 else hashlib.sha256(key).digest()).ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def token(self, body: bytes) -> bytes:
        digest = self._inner.copy()
        digest.update(body)
        mac = self._outer.copy()
        mac.update(digest.digest())
        token = binascii.b2a_base64(body + mac.digest()[:MAC_BYTES], newline=False)
        return token.translate(_URLSAFE).rstrip(b"=")


@lru_cache(maxsize=8)
def _signer(key: bytes) -> _Signer:
    return _Signer(key)


def encode(key: bytes, target: Target) -> str:
    parts = [KINDS[target.kind], target.campaign_id, target.subscriber_id, target.version_id]
    if target.kind == "c":
        if target.link_index is None:
            raise ValueError("a click token needs a link index")
        parts.append(target.link_index)
    return _signer(key).token(b"".join(_varint(p) for p in parts)).decode("ascii")


def decode(key: bytes, token: str, kind: str) -> Target | None:
    """The target of a valid token of this kind, or None (tampered, truncated, other kind)."""
    if not token or len(token) > _MAX_TOKEN:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if _b64(raw) != token or len(raw) <= MAC_BYTES:   # one spelling per token
        return None
    body = raw[:-MAC_BYTES]
    # The spelling is canonical (above), so the token verifies iff it is the one we make.
    if not hmac.compare_digest(_signer(key).token(body), token.encode("ascii")):
        return None
    values = _read_varints(body)
    if not values or _KIND_NAMES.get(values[0]) != kind:
        return None
    expected = 5 if kind == "c" else 4
    if len(values) != expected:
        return None
    link = values[4] if kind == "c" else None
    return Target(kind, values[1], values[2], values[3], link)


def _url(settings: Settings, target: Target) -> str:
    token = encode(tracking_key(settings), target)
    return f"{settings['server.public_url']}/t/{target.kind}/{token}"


def open_url(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    return _url(settings, Target("o", campaign_id, subscriber_id, version_id))


def read_url(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    return _url(settings, Target("r", campaign_id, subscriber_id, version_id))


def image_url(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    return _url(settings, Target("i", campaign_id, subscriber_id, version_id))


def click_url(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int,
              link_index: int) -> str:
    return _url(settings, Target("c", campaign_id, subscriber_id, version_id, link_index))


def _pixel_markup(src: str) -> str:
    return f'<img src="{src}" width="1" height="1" alt="" style="display:block;border:0">'


def _honeypot_markup(href: str) -> str:
    return (f'<a href="{href}" style="display:none;font-size:0;line-height:0;max-height:0;'
            f'overflow:hidden;mso-hide:all" aria-hidden="true" tabindex="-1">&#8203;</a>')


def pixel_html(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    """The tracking image (open and reading time), to put just before </body>."""
    return _pixel_markup(image_url(settings, campaign_id, subscriber_id, version_id))


def honeypot_html(settings: Settings, campaign_id: int, subscriber_id: int, version_id: int) -> str:
    """A link no person sees or clicks; a fetch of it marks the recipient's clicks as a scanner's."""
    return _honeypot_markup(click_url(settings, campaign_id, subscriber_id, version_id, HONEYPOT_LINK))


class Minter:
    """The tokens of one campaign version for many recipients, for the campaign sender (about
    45 tokens a message): the same signer as `encode`, with the varints of the campaign, the
    version and the link indexes made once. Click tokens come as bytes: the sender puts them
    into the message after encoding it."""

    def __init__(self, settings: Settings, campaign_id: int, version_id: int,
                 base: str | None = None):
        """`base`: the URL the links start with (a sending domain's tracking host; default
        server.public_url)."""
        self._sign = _signer(tracking_key(settings)).token
        prefix = (base or settings["server.public_url"]).encode("utf-8")
        self._url_prefix = {kind: prefix + f"/t/{kind}/".encode() for kind in KINDS}
        self._kind = {kind: _varint(number) for kind, number in KINDS.items()}
        self._campaign, self._version = _varint(campaign_id), _varint(version_id)
        self._index_varints: dict[bytes, bytes] = {}    # b"12" (decimal digits) -> varint

    def _url(self, kind: str, body: bytes) -> str:
        """The URL of the token of `body` (everything after the kind's varint)."""
        return (self._url_prefix[kind] + self._sign(self._kind[kind] + body)).decode("utf-8")

    def click_tokens(self, subscriber_id: int, indexes) -> dict[bytes, bytes]:
        """Click tokens of one recipient by link index (given and keyed as decimal digits,
        as they stand in a compiled message's placeholders)."""
        head = self._kind["c"] + self._campaign + _varint(subscriber_id) + self._version
        varints, sign = self._index_varints, self._sign
        found = {}
        for index in indexes:
            if index not in found:
                tail = varints.get(index)
                if tail is None:
                    tail = varints[index] = _varint(int(index))
                found[index] = sign(head + tail)
        return found

    def tail_html(self, subscriber_id: int, *, honeypot: bool, pixels: bool) -> str:
        """What goes just before </body>: the honeypot link and/or the tracking image."""
        head = self._campaign + _varint(subscriber_id) + self._version
        html = ""
        if honeypot:
            html += _honeypot_markup(self._url("c", head + _varint(HONEYPOT_LINK)))
        if pixels:
            html += _pixel_markup(self._url("i", head))
        return html
