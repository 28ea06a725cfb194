"""Public endpoints the relays post bounces and complaints to: /hooks/inbound/<provider>.

No session and no CSRF token: each request proves itself with the provider's signature (SES
through SNS, SendGrid, Postal, Mailgun) or the credentials configured for it (Postmark,
SparkPost). A provider that is not configured answers 404; a request that does not prove
itself, 401 — saying no more than that.
"""
from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, request

from altkraft_onprem import db
from altkraft_onprem.access.policy import PUBLIC, requires
from altkraft_onprem.config import current_settings

from . import providers, webhooks
from .providers import CONFIGURED, WebhookRefused

blueprint = Blueprint("inbound_hooks", __name__, url_prefix="/hooks/inbound")
blueprint.csrf_exempt = True
log = logging.getLogger("altkraft.inbound")
MAX_BODY = 2 * 1024 * 1024


def _text(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


@blueprint.route("/<provider>", methods=["POST"])
@requires(PUBLIC)
def receive(provider: str):
    settings = current_settings()
    if provider not in CONFIGURED or not settings[CONFIGURED[provider]]:
        return _text(404, "not found")
    if (request.content_length or 0) > MAX_BODY:
        return _text(413, "too large")
    body = request.get_data(cache=False)[:MAX_BODY + 1]
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return _text(400, "not JSON")
    try:
        events = _verified_events(settings, provider, body, payload)
    except WebhookRefused as exc:
        log.warning("inbound: %s webhook refused from %s: %s", provider, request.remote_addr, exc)
        return _text(401, "refused")
    if events is None:
        return _text(200, "subscribed")
    webhooks.receive(db.get_engine(), settings, provider, body, events)
    return _text(200, "ok")


def _verified_events(settings, provider: str, body: bytes, payload):
    """The events of a request that proved itself; None for an SNS subscription confirmed."""
    headers = request.headers
    if provider == "ses":
        message = payload if isinstance(payload, dict) else {}
        providers.verify_sns(settings["inbound.webhooks.ses_topic_arns"], message)
        if message.get("Type") == "SubscriptionConfirmation":
            providers.confirm_sns(message)
            return None
        return providers.events_ses(message)
    if provider == "sendgrid":
        providers.verify_sendgrid(settings["inbound.webhooks.sendgrid_public_key"],
                                  headers.get("X-Twilio-Email-Event-Webhook-Signature", ""),
                                  headers.get("X-Twilio-Email-Event-Webhook-Timestamp", ""), body)
        return providers.events_sendgrid(payload)
    if provider == "mailgun":
        providers.verify_mailgun(settings["inbound.webhooks.mailgun_signing_key_file"],
                                 payload if isinstance(payload, dict) else {})
        return providers.events_mailgun(payload)
    if provider == "postal":
        providers.verify_postal(settings["inbound.webhooks.postal_public_key"],
                                headers.get("X-Postal-Signature", ""), body)
        return providers.events_postal(payload if isinstance(payload, dict) else {})
    credentials = settings[CONFIGURED[provider]]
    providers.basic_auth(headers.get("Authorization", ""), credentials)
    if provider == "postmark":
        return providers.events_postmark(payload if isinstance(payload, dict) else {})
    return providers.events_sparkpost(payload)
