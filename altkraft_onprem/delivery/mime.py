"""MIME for outgoing mail: multipart/alternative, RFC 2047 headers, built for speed.

Non-ASCII header text becomes RFC 2047 encoded words (UTF-8, stdlib `email.header`); the bodies are encoded directly (quoted-printable, or base64 for mostly
non-ASCII text) because the generic email generator costs milliseconds per message, which
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
from email.header import Header
from functools import lru_cache

from .errors import DeliveryError


@dataclass
class Mime:
    """A message as header lines (b"Name: value\\r\\n", already folded) and a CRLF body."""

    headers: list[bytes]
    body: bytes
    message_id: str
    extra: list[bytes] = field(default_factory=list)   # prepended (DKIM-Signature)

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
    # email.header encodes the whole text (spaces included) into encoded words; the newer
    # policy folder drops the space between two encoded words in some cases.
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


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
        encoded = Header(name, "utf-8", header_name=header).encode(linesep="\r\n")
        return f"{header}: {encoded} <{email_address}>\r\n".encode("ascii")
    return _raw_line(header, address(name, email_address))


_date_cache: list = [0, ""]


def date_value() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        stamp = datetime.datetime.fromtimestamp(now, datetime.UTC)
        _date_cache[0], _date_cache[1] = now, email.utils.format_datetime(stamp)
    return _date_cache[1]


def new_message_id(domain: str) -> str:
    return f"<{int(time.time() * 1000):x}.{os.urandom(9).hex()}@{domain}>"


def _encode_body(content: str, subtype: str) -> bytes:
    data = content.replace("\r\n", "\n").replace("\r", "\n")
    raw = data.encode("utf-8")
    ascii_share = len(data) / max(len(raw), 1)
    if ascii_share > 0.8:
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
          subject: str, html: str = "", text: str = "", reply_to: str | None = None,
          headers: dict[str, str] | None = None, message_id: str | None = None) -> Mime:
    """The message for one recipient; raises DeliveryError naming the bad field."""
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
    for name, value in (headers or {}).items():
        lines.append(_raw_line(name, value) if value.isascii() and len(value) < 900
                     else header_line(name, value))
    lines.append(b"MIME-Version: 1.0\r\n")
    if html and text:
        boundary = b"=_ak_" + os.urandom(12).hex().encode()
        lines.append(b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n')
        body = (b"--" + boundary + b"\r\n" + _encode_body(text, "plain")
                + b"--" + boundary + b"\r\n" + _encode_body(html, "html")
                + b"--" + boundary + b"--\r\n")
    else:
        part = _encode_body(html or text, "html" if html else "plain")
        head, _, body = part.partition(b"\r\n\r\n")
        lines.extend(line + b"\r\n" for line in head.split(b"\r\n"))
    return Mime(lines, body, message_id)
