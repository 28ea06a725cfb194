"""MIME for outgoing mail: multipart/alternative, RFC 2047 headers, built for speed.

Non-ASCII header text becomes RFC 2047 encoded words (UTF-8, base64); the bodies go as 8bit
when the relay offers 8BITMIME, else quoted-printable (base64 for mostly non-ASCII text). Both
are done directly because the generic email generator costs milliseconds per message, which
the campaign hot path cannot afford. The result is a list of header lines plus a body, the
shape the DKIM signer needs, and `Mime.as_bytes()` for the wire.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import DeliveryError


@dataclass
class Mime:
    """A message as header lines (b"Name: value\\r\\n", already folded) and a CRLF body."""

    headers: list[bytes]
    body: bytes
    message_id: str
    extra: list[bytes] = field(default_factory=list)   # prepended (DKIM-Signature)
    eight_bit: bool = False                             # a part is 8bit: MAIL FROM needs BODY=8BITMIME

    def as_bytes(self) -> bytes:
        return b"".join(self.extra) + b"".join(self.headers) + b"\r\n" + self.body


def _check(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise DeliveryError(f"header {name} contains a line break")
    return value


@lru_cache(maxsize=8192)
def header_line(name: str, value: str) -> bytes:
    """One folded header line; non-ASCII becomes RFC 2047 encoded words (UTF-8)."""
    _check(name, value)
    if value.isascii():
        return f"{name}: {value}\r\n".encode("ascii")
    return f"{name}: {encoded_words(value)}\r\n".encode("ascii")


_WORD_OCTETS = 45           # 60 base64 characters: an encoded word stays within 75 (RFC 2047)


def encoded_words(value: str) -> str:
    """The whole text (spaces included) as UTF-8 "B" encoded words on folded lines; a
    character's octets never straddle two words."""
    octets = value.encode("utf-8")
    if len(octets) <= _WORD_OCTETS:                 # a name, a short subject: one word
        return "=?utf-8?b?" + base64.b64encode(octets).decode("ascii") + "?="
    words, chunk, size = [], [], 0
    for char in value:
        octets = len(char.encode("utf-8")) if char > "\x7f" else 1
        if size + octets > _WORD_OCTETS:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += octets
    words.append("".join(chunk))
    return "\r\n ".join("=?utf-8?b?" + base64.b64encode(word.encode("utf-8")).decode("ascii") + "?="
                          for word in words)


def _raw_line(name: str, value: str) -> bytes:
    """A header whose value is ASCII structured text (no RFC 2047), folded only if long."""
    _check(name, value)
    if not value.isascii():
        raise DeliveryError(f"header {name} must be ASCII")
    return f"{name}: {value}\r\n".encode("ascii")


@lru_cache(maxsize=8192)
def address(name: str, email_address: str) -> str:
    """An address header value with the display name quoted as needed."""
    local, at, domain = email_address.rpartition("@")
    if not at or not local or not domain:
        raise DeliveryError(f"not an email address: {email_address!r}")
    if not email_address.isascii():
        raise DeliveryError(f"{email_address!r}: non-ASCII addresses need SMTPUTF8, not supported")
    return email.utils.formataddr((name, email_address))


@lru_cache(maxsize=8192)
def address_line(header: str, name: str, email_address: str) -> bytes:
    """An address header line; a non-ASCII display name becomes encoded words."""
    _check(header, name)
    _check(header, email_address)
    if name and not name.isascii():
        address("", email_address)
        return f"{header}: {encoded_words(name)} <{email_address}>\r\n".encode("ascii")
    return _raw_line(header, address(name, email_address))


def list_id_line(name: str, ident: str) -> bytes:
    """List-Id (RFC 2919): the list's name as a phrase (quoted, or encoded words when not
    ASCII), then its identifier in angle brackets."""
    _check("List-Id", name)
    _check("List-Id", ident)
    if not name:
        return f"List-Id: <{ident}>\r\n".encode("ascii")
    if name.isascii():
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = encoded_words(name)
    return f"List-Id: {phrase} <{ident}>\r\n".encode("ascii")


_date_cache: list = [0, ""]


def date_value() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        stamp = datetime.datetime.fromtimestamp(now, datetime.UTC)
        _date_cache[0], _date_cache[1] = now, email.utils.format_datetime(stamp)
    return _date_cache[1]


def new_message_id(domain: str) -> str:
    return f"<{int(time.time() * 1000):x}.{os.urandom(9).hex()}@{domain}>"


MAX_LINE = 998          # RFC 5322 octets per line, CRLF excluded
_HIGH_OCTETS = bytes(range(128, 256))
_WINDOW = (MAX_LINE + 1) // 2


def lines_fit(raw: bytes) -> bool:
    """Whether no line of `raw` (LF line ends) is longer than 998 octets, without splitting
    30 KB into lines: a line of 2 × 499 - 1 = 997 octets or more covers one of any run of
    back-to-back 499-octet windows, so only a window without a line break needs its line
    measured."""
    find, size, start = raw.find, len(raw), 0
    while start + _WINDOW <= size:
        if find(b"\n", start, start + _WINDOW) >= 0:
            start += _WINDOW
            continue
        end = find(b"\n", start + _WINDOW)
        end = size if end < 0 else end
        if end - (raw.rfind(b"\n", 0, start) + 1) > MAX_LINE:
            return False
        start = end + 1
    return True


def _encode_body(content: str | bytes, subtype: str, eight_bit: bool = False) -> bytes:
    """A text part (str, or bytes already in UTF-8). With `eight_bit` (the relay offers
    8BITMIME, RFC 6152) UTF-8 goes as is when every line fits in 998 octets: no
    quoted-printable pass over 30 KB of HTML."""
    raw = content.encode("utf-8") if isinstance(content, str) else content
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if eight_bit and lines_fit(raw):
        body = raw.replace(b"\n", b"\r\n")
        if raw and not raw.endswith(b"\n"):
            body += b"\r\n"
        cte = b"7bit" if raw.isascii() else b"8bit"
        return (b"Content-Type: text/" + subtype.encode() + b'; charset="utf-8"\r\n'
                b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)
    if len(raw.translate(None, _HIGH_OCTETS)) > 0.8 * len(raw):     # mostly ASCII
        encoded = binascii.b2a_qp(raw, quotetabs=False, istext=True, header=False)
        encoded = encoded.replace(b"\n", b"\r\n")
        if not encoded.endswith(b"\r\n"):
            encoded += b"\r\n"
        cte = b"quoted-printable"
    else:
        encoded = base64.encodebytes(raw).replace(b"\n", b"\r\n")
        cte = b"base64"
    return (b"Content-Type: text/" + subtype.encode() + b'; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + encoded)


def build(*, from_email: str, from_name: str = "", to_email: str, to_name: str = "",
          subject: str, html: str | bytes = "", text: str | bytes = "", reply_to: str | None = None,
          headers: dict[str, str] | None = None, message_id: str | None = None,
          eight_bit: bool = False, list_id: bytes | None = None) -> Mime:
    """The message for one recipient; raises DeliveryError naming the bad field.
    `eight_bit`: the relay takes 8BITMIME (send with BODY=8BITMIME then, see `Mime.eight_bit`);
    `list_id`: a `list_id_line`."""
    if not html and not text:
        raise DeliveryError("message has neither an HTML nor a text body")
    domain = from_email.rpartition("@")[2].lower()
    message_id = message_id or new_message_id(domain)
    lines = [
        address_line("From", from_name, from_email),
        address_line("To", to_name, to_email),
        header_line("Subject", subject) if not subject.isascii() or len(subject) > 70
        else _raw_line("Subject", subject),
        _raw_line("Date", date_value()),
        _raw_line("Message-ID", message_id),
    ]
    if reply_to:
        lines.append(address_line("Reply-To", "", reply_to))
    if list_id:
        lines.append(list_id)
    for name, value in (headers or {}).items():
        lines.append(_raw_line(name, value) if value.isascii() and len(value) < 900
                     else header_line(name, value))
    lines.append(b"MIME-Version: 1.0\r\n")
    if html and text:
        boundary = b"=_ak_" + os.urandom(12).hex().encode()
        lines.append(b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n')
        body = (b"--" + boundary + b"\r\n" + _encode_body(text, "plain", eight_bit)
                + b"--" + boundary + b"\r\n" + _encode_body(html, "html", eight_bit)
                + b"--" + boundary + b"--\r\n")
    else:
        part = _encode_body(html or text, "html" if html else "plain", eight_bit)
        head, _, body = part.partition(b"\r\n\r\n")
        lines.extend(line + b"\r\n" for line in head.split(b"\r\n"))
    # Only an 8bit part puts non-ASCII octets into the body.
    return Mime(lines, body, message_id, eight_bit=eight_bit and not body.isascii())
