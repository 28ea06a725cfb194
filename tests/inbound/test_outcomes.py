"""What comes back after a real campaign, through the real receiver and the pipeline job:
bounces, complaints, mailto unsubscribes, auto-replies — and the outcomes people read."""
from __future__ import annotations

import json
import smtplib

import pytest
from sqlalchemy import select

from altkraft_onprem import db, events
from altkraft_onprem.audience.models import (
    consents,
    subscriber_activity,
    subscriber_lists,
    subscribers,
    suppressions,
)
from altkraft_onprem.inbound.models import bounces, complaints, inbound_messages
from tests.inbound import reports
from tests.inbound.conftest import FBL, Receiver, inbound_settings, send_campaign, settled

PEOPLE = [{"email": f"reader{i}@example.net", "first_name": f"R{i}"} for i in range(10)]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink)
    sent = send_campaign(env, settings, PEOPLE, "Inbound newsletter")
    server = Receiver(env, settings).start()
    yield {**sent, "settings": settings, "server": server}
    server.stop()


@pytest.fixture()
def emitted():
    seen = []

    def bounced(conn, **payload):
        seen.append(("bounced", payload))

    def complained(conn, **payload):
        seen.append(("complained", payload))
    events.EMAIL_BOUNCED.connect(bounced)
    events.EMAIL_COMPLAINED.connect(complained)
    yield seen
    events.EMAIL_BOUNCED.disconnect(bounced)
    events.EMAIL_COMPLAINED.disconnect(complained)


def original(sink, index: int):
    return sink.by_recipient(PEOPLE[index]["email"])[0]


def deliver(world, rcpt: str, message: bytes) -> int:
    with smtplib.SMTP("127.0.0.1", world["server"].port, timeout=10) as client:
        assert client.sendmail("", [rcpt], message) == {}
    return 0


def last_message(env) -> dict:
    with db.read(env.engine) as conn:
        row = conn.execute(select(inbound_messages).order_by(inbound_messages.c.id.desc())).first()
    found = dict(row._mapping)
    found["detail"] = json.loads(found["detail"])
    return found


def person(env, subscriber_id: int) -> dict:
    with db.read(env.engine) as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
        entry = conn.execute(select(suppressions).where(suppressions.c.email == row.email)).first()
        kinds = conn.execute(select(subscriber_activity.c.kind).where(
            subscriber_activity.c.subscriber_id == subscriber_id,
            subscriber_activity.c.kind.not_in(("created", "confirmed")))).scalars().all()
    return {"state": row.state, "suppression": entry.source if entry else None, "activity": kinds}


def test_hard_bounce_to_the_verp_address_suppresses(env, world, sink, emitted):
    message = original(sink, 0)
    deliver(world, message.envelope_from, reports.dsn(message.raw, recipient=PEOPLE[0]["email"]))
    settled(env)
    stored = last_message(env)
    assert (stored["state"], stored["outcome"]) == ("processed", "bounce")
    assert stored["detail"]["attributed_by"] == "envelope"
    assert person(env, world["ids"][0]) == {"state": "bounced", "suppression": "bounce",
                                            "activity": ["bounced"]}
    with db.read(env.engine) as conn:
        bounce = conn.execute(select(bounces).where(bounces.c.inbound_id == stored["id"])).one()
    assert (bounce.bounce_class, bounce.status, bounce.campaign_id, bounce.suppressed) == \
        ("hard", "5.1.1", world["campaign_id"], True)
    assert "User unknown" in bounce.diagnostic
    assert [kind for kind, _ in emitted] == ["bounced"]
    assert emitted[0][1]["bounce_class"] == "hard" and emitted[0][1]["suppressed"] is True


def test_policy_block_never_suppresses_the_recipient(env, world, sink):
    message = original(sink, 1)
    deliver(world, message.envelope_from, reports.dsn(
        message.raw, recipient=PEOPLE[1]["email"], status="5.7.1",
        diagnostic="smtp; 550 5.7.1 Service unavailable; client [192.0.2.25] blocked using "
                   "zen.spamhaus.org"))
    settled(env)
    with db.read(env.engine) as conn:
        bounce = conn.execute(select(bounces).order_by(bounces.c.id.desc())).first()
    assert (bounce.bounce_class, bounce.rule, bounce.suppressed) == ("policy", "blocklist", False)
    assert person(env, world["ids"][1])["state"] == "active"


def test_delay_warning_is_not_a_bounce(env, world, sink):
    message = original(sink, 1)
    deliver(world, message.envelope_from, reports.dsn(
        message.raw, recipient=PEOPLE[1]["email"], status="4.4.1", action="delayed",
        diagnostic="smtp; 451 4.4.1 connection timed out"))
    settled(env)
    assert (last_message(env)["state"], last_message(env)["outcome"]) == ("ignored", "delayed")
    assert person(env, world["ids"][1])["state"] == "active"


def test_complaint_with_the_recipient_redacted_suppresses(env, world, sink, emitted):
    """Microsoft's JMRP hides the recipient; the original's Return-Path still names them."""
    message = original(sink, 2)
    copy = b"Return-Path: <" + message.envelope_from.encode() + b">\r\n" + reports.redact(message.raw)
    deliver(world, FBL, reports.arf(copy))
    settled(env)
    stored = last_message(env)
    assert (stored["state"], stored["outcome"], stored["detail"]["attributed_by"]) == \
        ("processed", "complaint", "return-path")
    assert person(env, world["ids"][2]) == {"state": "complained", "suppression": "complaint",
                                            "activity": ["complained"]}
    with db.read(env.engine) as conn:
        complaint = conn.execute(select(complaints).where(complaints.c.inbound_id == stored["id"])).one()
    assert (complaint.feedback_type, complaint.campaign_id, complaint.reporter) == \
        ("abuse", world["campaign_id"], "Microsoft JMRP")
    assert [kind for kind, _ in emitted] == ["complained"]


def test_complaint_found_by_the_signed_list_unsubscribe_token(env, world, sink):
    message = original(sink, 3)
    deliver(world, FBL, reports.arf(reports.redact(message.raw), feedback_type="fraud"))
    settled(env)
    assert last_message(env)["detail"]["attributed_by"] == "list-unsubscribe"
    assert person(env, world["ids"][3])["state"] == "complained"


def test_complaint_found_by_message_id_in_the_ledger(env, world, sink):
    message = original(sink, 4)
    deliver(world, FBL, reports.arf(reports.redact(message.raw, "List-Unsubscribe")))
    settled(env)
    assert last_message(env)["detail"]["attributed_by"] == "message-id"
    assert person(env, world["ids"][4])["state"] == "complained"


def test_not_spam_report_is_never_a_complaint(env, world, sink):
    message = original(sink, 5)
    deliver(world, FBL, reports.arf(message.raw, feedback_type="not-spam"))
    settled(env)
    assert (last_message(env)["state"], last_message(env)["outcome"]) == ("ignored", "not_spam")
    assert person(env, world["ids"][5])["state"] == "active"


def test_forged_complaint_about_an_address_we_never_mailed_is_unmatched(env, world):
    forged = (b"From: news@example.com\r\nTo: victim@example.org\r\nMessage-ID: <forged@x>\r\n"
              b"Subject: hi\r\n\r\nhello\r\n")
    deliver(world, FBL, reports.arf(forged))
    settled(env)
    assert last_message(env)["state"] == "unmatched"
    with db.read(env.engine) as conn:
        assert conn.execute(select(suppressions).where(
            suppressions.c.email == "victim@example.org")).first() is None


def test_auto_reply_to_the_verp_address_is_ignored(env, world, sink):
    message = original(sink, 6)
    deliver(world, message.envelope_from, reports.auto_reply(message.envelope_from))
    settled(env)
    assert (last_message(env)["state"], last_message(env)["outcome"]) == ("ignored", "auto_reply")
    assert person(env, world["ids"][6])["state"] == "active"


def _mailto(message) -> str:
    header = str(message["List-Unsubscribe"])
    return header.split("<mailto:", 1)[1].split("?", 1)[0]


def test_mailto_unsubscribe_leaves_the_list(env, world, sink):
    message = original(sink, 7)
    deliver(world, _mailto(message), reports.mailto_unsubscribe(_mailto(message)))
    settled(env)
    assert (last_message(env)["state"], last_message(env)["outcome"]) == ("processed", "unsubscribe")
    with db.read(env.engine) as conn:
        status = conn.execute(select(subscriber_lists.c.status).where(
            subscriber_lists.c.subscriber_id == world["ids"][7],
            subscriber_lists.c.list_id == world["list_id"])).scalar_one()
        forms = conn.execute(select(consents.c.form).where(
            consents.c.subscriber_id == world["ids"][7], consents.c.kind == "unsubscribe")).scalars().all()
    assert status == "unsubscribed"
    assert forms == ["mailto"]


def test_a_retried_mailto_unsubscribe_is_applied_once(env, world, sink):
    message = original(sink, 8)
    request = reports.mailto_unsubscribe(_mailto(message))
    deliver(world, _mailto(message), request)
    deliver(world, _mailto(message), request)
    settled(env)
    assert person(env, world["ids"][8])["activity"].count("unsubscribed") == 1


def test_bounce_for_a_dsn_without_recipient_fields_goes_to_review(env, world, sink):
    message = original(sink, 9)
    deliver(world, message.envelope_from,
            reports.dsn(message.raw, recipient=PEOPLE[9]["email"], per_recipient=False))
    settled(env)
    stored = last_message(env)
    assert stored["state"] == "review"
    assert any("per-recipient" in note for note in stored["detail"]["notes"])
    assert person(env, world["ids"][9])["state"] == "active"


def test_campaign_report_counts_them_by_class_and_provider(env, world, client):
    """The bounces and complaints above, in GET /api/v1/campaigns/{id}/report."""
    token = env.token("Analyst")
    report = client.get(f"/api/v1/campaigns/{world['campaign_id']}/report",
                        headers={"Authorization": f"Bearer {token}"}).get_json()
    assert report["bounces"] == {"hard": 1, "soft": 0, "policy": 1}
    assert report["complaints"] == 3
    assert report["by_provider"] == [{"provider": "other", "hard": 1, "soft": 0, "policy": 1,
                                      "complaints": 3}]
    assert report["complaint_rate"] == 30.0


def test_dashboard_and_report_index_show_them(env, world, client):
    env.login(client, env.user("Analyst"))
    for path, marker in (("/", 'id="report-tiles"'), ("/reports/", "<tbody>")):
        page = client.get(path, follow_redirects=True).get_data(as_text=True)
        row = next(r for r in page.split(marker, 1)[1].split("</tr>") if "Inbound newsletter" in r)
        assert "<td>2</td><td>3</td>" in row.replace("\n", "").replace("      ", ""), row
