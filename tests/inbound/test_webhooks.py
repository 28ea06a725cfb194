"""Relay webhooks with real signatures, made with keys the test holds as each provider would:
SES through SNS (an X.509 certificate), SendGrid (ECDSA), Postal (RSA), Mailgun (HMAC), Postmark
and SparkPost (basic auth). Forged, stale and unconfigured requests change nothing."""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.app import create_app
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.inbound import providers
from altkraft_onprem.inbound.models import bounces, inbound_messages
from tests.inbound.conftest import inbound_settings, send_campaign

PEOPLE = [{"email": f"hooked{i}@example.net"} for i in range(12)]
TOPIC = "arn:aws:sns:eu-central-1:123456789012:ses-feedback"
CERT_URL = "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-test.pem"


def _der_b64(public_key) -> str:
    return base64.b64encode(public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hook-secrets")
    (folder / "mailgun").write_text("mailgun-signing-key\n")
    (folder / "postmark").write_text("postmark:hook secret\n")
    (folder / "sparkpost").write_text("sparkpost:other secret\n")
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(sns_key.public_key()).serial_number(1)
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1)).sign(sns_key, hashes.SHA256()))
    # Amazon's certificate, as if fetched once from CERT_URL.
    providers.sns_certificates[CERT_URL] = certificate.public_bytes(serialization.Encoding.PEM)
    return {"folder": folder, "sendgrid": ec.generate_private_key(ec.SECP256R1()),
            "postal": rsa.generate_private_key(public_exponent=65537, key_size=2048), "sns": sns_key}


@pytest.fixture(scope="module")
def world(env, sink, keys):
    folder = keys["folder"]
    settings = inbound_settings(
        env, sink, inbound__webhooks__ses_topic_arns=[TOPIC],
        inbound__webhooks__sendgrid_public_key=_der_b64(keys["sendgrid"].public_key()),
        inbound__webhooks__mailgun_signing_key_file=str(folder / "mailgun"),
        inbound__webhooks__postmark_basic_auth_file=str(folder / "postmark"),
        inbound__webhooks__sparkpost_basic_auth_file=str(folder / "sparkpost"),
        inbound__webhooks__postal_public_key=_der_b64(keys["postal"].public_key()))
    sent = send_campaign(env, settings, PEOPLE, "Hooked")
    app = create_app(settings, engine=env.engine)
    return {**sent, "client": app.test_client(), "settings": settings}


def _state(env, index: int) -> str:
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers.c.state).where(
            subscribers.c.email == PEOPLE[index]["email"])).scalar_one()


def _message_id(sink, index: int) -> str:
    return str(sink.by_recipient(PEOPLE[index]["email"])[0]["Message-ID"])


def _stored(env) -> int:
    with db.read(env.engine) as conn:
        return conn.execute(select(func.count()).select_from(inbound_messages)).scalar_one()


def _sendgrid(keys, events: list, timestamp: str | None = None) -> tuple[bytes, dict]:
    body = json.dumps(events).encode()
    timestamp = timestamp or str(int(time.time()))
    signature = keys["sendgrid"].sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                  "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}


def test_sendgrid_bounce_is_applied_with_its_campaign(env, world, keys, sink):
    body, headers = _sendgrid(keys, [{"event": "bounce", "type": "bounce", "email": PEOPLE[0]["email"],
                                      "status": "5.1.1", "reason": "550 5.1.1 User unknown",
                                      "smtp-id": _message_id(sink, 0)}])
    response = world["client"].post("/hooks/inbound/sendgrid", data=body, headers=headers)
    assert response.status_code == 200, response.data
    assert _state(env, 0) == "bounced"
    with db.read(env.engine) as conn:
        bounce = conn.execute(select(bounces).where(bounces.c.email == PEOPLE[0]["email"])).one()
    assert (bounce.source, bounce.bounce_class, bounce.campaign_id) == ("webhook", "hard", world["campaign_id"])


def test_a_retried_webhook_is_applied_once(env, world, keys, sink):
    body, headers = _sendgrid(keys, [{"event": "spamreport", "email": PEOPLE[1]["email"]}])
    for _ in range(2):
        assert world["client"].post("/hooks/inbound/sendgrid", data=body, headers=headers).status_code == 200
    with db.read(env.engine) as conn:
        assert conn.execute(select(func.count()).select_from(inbound_messages).where(
            inbound_messages.c.rcpt == "webhook:sendgrid", inbound_messages.c.state == "processed")
        ).scalar_one() == 2          # the bounce above and this complaint, once
    assert _state(env, 1) == "complained"


@pytest.mark.parametrize("tamper", ["signature", "stale"])
def test_forged_or_stale_sendgrid_requests_are_refused(env, world, keys, tamper):
    events = [{"event": "bounce", "email": PEOPLE[2]["email"], "status": "5.1.1"}]
    body, headers = _sendgrid(keys, events, str(int(time.time()) - 3600) if tamper == "stale" else None)
    if tamper == "signature":
        body = body.replace(b"5.1.1", b"5.1.2")
    before = _stored(env)
    assert world["client"].post("/hooks/inbound/sendgrid", data=body, headers=headers).status_code == 401
    assert _stored(env) == before and _state(env, 2) == "active"


def _mailgun(event_data: dict, key: str = "mailgun-signing-key") -> dict:
    timestamp, token = str(int(time.time())), "t" * 50
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event_data}


def test_mailgun_permanent_failure_and_complaint(env, world):
    failed = _mailgun({"event": "failed", "severity": "permanent", "recipient": PEOPLE[3]["email"],
                       "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist"}})
    assert world["client"].post("/hooks/inbound/mailgun", json=failed).status_code == 200
    complained = _mailgun({"event": "complained", "recipient": PEOPLE[4]["email"]})
    assert world["client"].post("/hooks/inbound/mailgun", json=complained).status_code == 200
    assert (_state(env, 3), _state(env, 4)) == ("bounced", "complained")
    forged = _mailgun({"event": "complained", "recipient": PEOPLE[5]["email"]}, key="guessed")
    assert world["client"].post("/hooks/inbound/mailgun", json=forged).status_code == 401
    assert _state(env, 5) == "active"


def _basic(credentials: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_postmark_and_sparkpost_need_their_credentials(env, world):
    postmark = {"RecordType": "Bounce", "Type": "HardBounce", "Email": PEOPLE[6]["email"],
                "Description": "The server was unable to deliver your message", "Details": "550 user unknown"}
    client = world["client"]
    assert client.post("/hooks/inbound/postmark", json=postmark, headers=_basic("postmark:wrong")).status_code == 401
    assert _state(env, 6) == "active"
    assert client.post("/hooks/inbound/postmark", json=postmark, headers=_basic("postmark:hook secret")).status_code == 200
    assert _state(env, 6) == "bounced"
    sparkpost = [{"msys": {"message_event": {"type": "spam_complaint", "rcpt_to": PEOPLE[7]["email"],
                                             "fbtype": "abuse"}}}]
    assert client.post("/hooks/inbound/sparkpost", json=sparkpost,
                       headers=_basic("sparkpost:other secret")).status_code == 200
    assert _state(env, 7) == "complained"


def test_postal_signed_hard_fail(env, world, keys, sink):
    body = json.dumps({"event": "MessageDeliveryFailed", "payload": {
        "status": "HardFail", "output": "550 5.1.1 No such user",
        "message": {"to": PEOPLE[8]["email"], "message_id": _message_id(sink, 8).strip("<>")}}}).encode()
    signature = base64.b64encode(keys["postal"].sign(body, padding.PKCS1v15(), hashes.SHA1())).decode()
    client = world["client"]
    assert client.post("/hooks/inbound/postal", data=body, headers={"X-Postal-Signature": "AAAA"}).status_code == 401
    assert client.post("/hooks/inbound/postal", data=body, headers={"X-Postal-Signature": signature}).status_code == 200
    assert _state(env, 8) == "bounced"


def _sns(keys, kind: str, **fields) -> dict:
    message = {"Type": kind, "MessageId": "m-1", "TopicArn": TOPIC, "Timestamp": "2026-11-27T10:00:00.000Z",
               "SignatureVersion": "1", "SigningCertURL": CERT_URL, **fields}
    order = {"Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
             "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                          "TopicArn", "Type")}[kind]
    text = "".join(f"{k}\n{message[k]}\n" for k in order if k in message)
    message["Signature"] = base64.b64encode(keys["sns"].sign(text.encode(), padding.PKCS1v15(),
                                                             hashes.SHA1())).decode()
    return message


def test_ses_bounce_through_sns(env, world, keys, sink):
    notice = {"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bouncedRecipients": [
        {"emailAddress": PEOPLE[9]["email"], "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
        "mail": {"commonHeaders": {"messageId": _message_id(sink, 9)}}}
    message = _sns(keys, "Notification", Message=json.dumps(notice))
    assert world["client"].post("/hooks/inbound/ses", json=message).status_code == 200
    assert _state(env, 9) == "bounced"


def test_ses_messages_of_another_topic_or_forged_are_refused(env, world, keys):
    notice = {"notificationType": "Complaint", "complaint": {"complainedRecipients": [
        {"emailAddress": PEOPLE[10]["email"]}]}}
    other = _sns(keys, "Notification", Message=json.dumps(notice), TopicArn="arn:aws:sns:x:1:other")
    forged = _sns(keys, "Notification", Message=json.dumps(notice))
    forged["Message"] = forged["Message"].replace("10@", "11@")
    for message in (other, forged):
        assert world["client"].post("/hooks/inbound/ses", json=message).status_code == 401
    assert _state(env, 10) == "active" and _state(env, 11) == "active"


def test_sns_subscription_is_confirmed_only_at_amazon(world, keys):
    message = _sns(keys, "SubscriptionConfirmation", Message="confirm", Token="tok",
                   SubscribeURL="https://attacker.example/confirm")
    assert world["client"].post("/hooks/inbound/ses", json=message).status_code == 401


def test_a_provider_not_configured_is_not_there(env):
    client = create_app(env.settings, engine=env.engine).test_client()
    assert client.post("/hooks/inbound/sendgrid", json=[]).status_code == 404
    assert client.post("/hooks/inbound/nosuch", json=[]).status_code == 404
