"""Relay webhooks: how each provider proves a request is its own, and what its payload says.

`verify_*` raise WebhookRefused (answered 401/403) unless the request carries the provider's
signature or credentials; `events_*` turn a verified payload into Events. Nothing here touches
the database (webhooks.py stores and applies).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import load_pem_x509_certificate

from altkraft_onprem import http_guard

# Each provider's endpoint is on when its setting is set.
CONFIGURED = {"ses": "inbound.webhooks.ses_topic_arns", "sendgrid": "inbound.webhooks.sendgrid_public_key",
              "mailgun": "inbound.webhooks.mailgun_signing_key_file",
              "postmark": "inbound.webhooks.postmark_basic_auth_file",
              "sparkpost": "inbound.webhooks.sparkpost_basic_auth_file",
              "postal": "inbound.webhooks.postal_public_key"}
MAX_AGE_SECONDS = 15 * 60       # a signed timestamp older than this is a replay
SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_POLICY = http_guard.Policy("inbound.webhooks.ses_topic_arns", hosts_setting="(Amazon SNS only)",
                               allowed_hosts=("*.amazonaws.com", "*.amazonaws.com.cn"), timeout=10)
# Amazon's signing certificates by URL (they are fetched once per process).
sns_certificates: dict[str, bytes] = {}


class WebhookRefused(Exception):
    """A request that is not the provider's (str: why; never shown in detail to the caller)."""


@dataclass
class Event:
    kind: str                   # bounce, complaint
    email: str
    status: str = ""            # enhanced status code, when the provider gives one
    diagnostic: str = ""
    hard: bool | None = None    # the provider's own hard/soft verdict, when it has one
    message_id: str = ""        # the original's Message-ID (ours), when the provider passes it on
    feedback_type: str = "abuse"


def _secret_file(path: str) -> str:
    return Path(path).read_text().strip() if path else ""


def _fresh(timestamp: str) -> None:
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError:
        raise WebhookRefused("bad timestamp") from None
    if age > MAX_AGE_SECONDS:
        raise WebhookRefused("timestamp too old")


def basic_auth(header: str, secret_file: str) -> None:
    expected = _secret_file(secret_file)
    if not expected:
        raise WebhookRefused("not configured")
    scheme, _, value = (header or "").partition(" ")
    try:
        given = base64.b64decode(value).decode("utf-8") if scheme.lower() == "basic" else ""
    except (ValueError, UnicodeDecodeError):
        given = ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookRefused("bad credentials")


# --- SendGrid: ECDSA P-256 over timestamp + body ----------------------------------------------

def verify_sendgrid(public_key: str, signature: str, timestamp: str, body: bytes) -> None:
    if not public_key:
        raise WebhookRefused("not configured")
    _fresh(timestamp)
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
        key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError):
        raise WebhookRefused("bad signature") from None


def events_sendgrid(payload) -> list[Event]:
    out = []
    for item in payload if isinstance(payload, list) else []:
        kind = item.get("event")
        if kind == "bounce":
            out.append(Event("bounce", str(item.get("email", "")), str(item.get("status", "")),
                             str(item.get("reason", "")), hard=item.get("type") != "blocked",
                             message_id=str(item.get("smtp-id", ""))))
        elif kind == "spamreport":
            out.append(Event("complaint", str(item.get("email", "")), message_id=str(item.get("smtp-id", ""))))
    return out


# --- Mailgun: HMAC-SHA256 of timestamp + token ------------------------------------------------

def verify_mailgun(key_file: str, payload: dict) -> None:
    key = _secret_file(key_file)
    if not key:
        raise WebhookRefused("not configured")
    signed = payload.get("signature") or {}
    timestamp, token = str(signed.get("timestamp", "")), str(signed.get("token", ""))
    _fresh(timestamp)
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signed.get("signature", ""))):
        raise WebhookRefused("bad signature")


def events_mailgun(payload: dict) -> list[Event]:
    data = payload.get("event-data") or {}
    headers = (data.get("message") or {}).get("headers") or {}
    message_id = str(headers.get("message-id", ""))
    if message_id and not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    if data.get("event") == "failed" and data.get("severity") == "permanent":
        status = data.get("delivery-status") or {}
        return [Event("bounce", str(data.get("recipient", "")), str(status.get("enhanced-code", "")),
                      f"{status.get('code', '')} {status.get('message') or status.get('description') or ''}".strip(),
                      message_id=message_id)]
    if data.get("event") == "complained":
        return [Event("complaint", str(data.get("recipient", "")), message_id=message_id)]
    return []


# --- Postmark and SparkPost: basic auth -------------------------------------------------------

def events_postmark(payload: dict) -> list[Event]:
    record = payload.get("RecordType")
    if record == "Bounce":
        kind = str(payload.get("Type", ""))
        if kind in ("Transient", "DnsError", "SoftBounce", "HardBounce", "BadEmailAddress",
                    "Blocked", "SpamNotification", "AddressChange", "ManuallyDeactivated", "Unknown"):
            return [Event("bounce", str(payload.get("Email", "")), "",
                          f"{payload.get('Description', '')} {payload.get('Details', '')}".strip(),
                          hard=kind in ("HardBounce", "BadEmailAddress") or None)]
    if record == "SpamComplaint":
        return [Event("complaint", str(payload.get("Email", "")))]
    return []


SPARKPOST_HARD = {"10", "30", "90"}     # invalid recipient, generic hard, unsubscribe-list


def events_sparkpost(payload) -> list[Event]:
    out = []
    for item in payload if isinstance(payload, list) else []:
        event = ((item or {}).get("msys") or {})
        event = event.get("message_event") or event.get("feedback_event") or {}
        kind = event.get("type")
        if kind in ("bounce", "out_of_band"):
            out.append(Event("bounce", str(event.get("rcpt_to", "")), "",
                             str(event.get("raw_reason") or event.get("reason") or ""),
                             hard=str(event.get("bounce_class")) in SPARKPOST_HARD or None))
        elif kind == "spam_complaint":
            out.append(Event("complaint", str(event.get("rcpt_to", "")),
                             feedback_type=str(event.get("fbtype") or "abuse")))
    return out


# --- Postal: RSA-SHA1 over the body ------------------------------------------------------------

def verify_postal(public_key: str, signature: str, body: bytes) -> None:
    if not public_key:
        raise WebhookRefused("not configured")
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
        key.verify(base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA1())
    except (InvalidSignature, ValueError, TypeError):
        raise WebhookRefused("bad signature") from None


def events_postal(payload: dict) -> list[Event]:
    event, data = payload.get("event"), payload.get("payload") or {}
    if event == "MessageDeliveryFailed" and data.get("status") == "HardFail":
        message = data.get("message") or {}
        return [Event("bounce", str(message.get("to", "")), "",
                      str(data.get("output") or data.get("details") or ""),
                      message_id=f"<{message.get('message_id')}>" if message.get("message_id") else "")]
    if event == "MessageBounced":
        original = data.get("original_message") or {}
        return [Event("bounce", str(original.get("to", "")), "", "bounce message received",
                      message_id=f"<{original.get('message_id')}>" if original.get("message_id") else "")]
    return []


# --- Amazon SES through SNS: signed with Amazon's certificate ----------------------------------

_SNS_FIELDS = {"Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
               "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp",
                                            "Token", "TopicArn", "Type")}


def _sns_certificate(url: str) -> bytes:
    if url not in sns_certificates:
        response = http_guard.request(SNS_POLICY, "GET", url)
        if response.status != 200:
            raise WebhookRefused(f"certificate {url}: HTTP {response.status}")
        sns_certificates[url] = response.body
    return sns_certificates[url]


def _amazon_url(url: str) -> bool:
    parts = urlsplit(url or "")
    return parts.scheme == "https" and bool(SNS_CERT_HOST.match(parts.hostname or ""))


def verify_sns(topics: list[str], message: dict) -> None:
    if not topics:
        raise WebhookRefused("not configured")
    if message.get("TopicArn") not in topics:
        raise WebhookRefused("unknown topic")
    fields = _SNS_FIELDS.get(str(message.get("Type")))
    if fields is None or not _amazon_url(str(message.get("SigningCertURL", ""))):
        raise WebhookRefused("not an SNS message")
    text = "".join(f"{name}\n{message[name]}\n" for name in fields if name in message)
    digest = hashes.SHA256() if str(message.get("SignatureVersion")) == "2" else hashes.SHA1()
    try:
        certificate = load_pem_x509_certificate(_sns_certificate(message["SigningCertURL"]))
        certificate.public_key().verify(base64.b64decode(message.get("Signature", "")),
                                        text.encode(), padding.PKCS1v15(), digest)
    except (InvalidSignature, ValueError, TypeError, http_guard.Refused):
        raise WebhookRefused("bad signature") from None


def confirm_sns(message: dict) -> None:
    """Subscribes by visiting the SubscribeURL (only ever one of Amazon's)."""
    url = str(message.get("SubscribeURL", ""))
    if not _amazon_url(url):
        raise WebhookRefused("SubscribeURL is not Amazon's")
    response = http_guard.request(SNS_POLICY, "GET", url)
    if response.status != 200:
        raise WebhookRefused(f"subscription confirmation: HTTP {response.status}")


def events_ses(message: dict) -> list[Event]:
    try:
        notice = json.loads(message.get("Message") or "{}")
    except ValueError:
        return []
    headers = (notice.get("mail") or {}).get("commonHeaders") or {}
    message_id = str(headers.get("messageId", ""))
    if notice.get("notificationType") == "Bounce":
        bounce = notice.get("bounce") or {}
        hard = {"Permanent": True, "Transient": False}.get(bounce.get("bounceType"))
        return [Event("bounce", str(r.get("emailAddress", "")), str(r.get("status", "")),
                      str(r.get("diagnosticCode", "")), hard=hard, message_id=message_id)
                for r in bounce.get("bouncedRecipients") or []]
    if notice.get("notificationType") == "Complaint":
        complaint = notice.get("complaint") or {}
        kind = str(complaint.get("complaintFeedbackType") or "abuse")
        return [Event("complaint", str(r.get("emailAddress", "")), message_id=message_id,
                      feedback_type=kind) for r in complaint.get("complainedRecipients") or []]
    return []
