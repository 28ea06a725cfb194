"""One message out: MIME, DKIM, SMTP — used by opt-in mail, send-test and campaigns."""
from __future__ import annotations

from dataclasses import dataclass

from . import dkim, mime, smtp
from .errors import DeliveryError

__all__ = ["DeliveryError", "SendResult", "send_single", "signed_message"]


@dataclass(frozen=True)
class SendResult:
    message_id: str
    relay: str
    reply: str


def signed_message(settings, message: mime.Mime, from_email: str) -> bytes:
    """The wire bytes of a message with the From domain's DKIM signatures prepended."""
    domain = from_email.rpartition("@")[2]
    keys = dkim.keys_for(settings, domain)
    message.extra = dkim.signature_lines(keys, message.headers, message.body)
    return message.as_bytes()


def send_single(settings, *, to_email: str, to_name: str = "", from_email: str,
                from_name: str = "", subject: str, html: str, text: str,
                reply_to: str | None = None, headers: dict[str, str] | None = None,
                return_path: str | None = None) -> SendResult:
    """Builds, DKIM-signs and relays one message; DeliveryError says why it did not go."""
    message = mime.build(from_email=from_email, from_name=from_name, to_email=to_email,
                         to_name=to_name, subject=subject, html=html, text=text,
                         reply_to=reply_to, headers=headers)
    data = signed_message(settings, message, from_email)
    reply = smtp.pool_for(settings).send(return_path or from_email, to_email, data)
    return SendResult(message.message_id, reply.relay, str(reply))
