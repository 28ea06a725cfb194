"""IMAP polling against a real Dovecot: new messages are stored and applied, processed ones are
moved to the processed folder and unmatched ones to the unmatched folder — nothing deleted —
and a second poll reads nothing twice."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.inbound import imap, intake, overview
from altkraft_onprem.inbound.models import inbound_messages
from tests.inbound import reports
from tests.inbound.conftest import FBL, inbound_settings, send_campaign
from tests.inbound.imap_server import dovecot  # noqa: F401  (fixture)

PEOPLE = [{"email": f"polled{i}@example.net"} for i in range(3)]


@pytest.fixture(scope="module")
def world(env, sink, dovecot, tmp_path_factory):  # noqa: F811
    box = dovecot.mailbox(tmp_path_factory.mktemp("secrets") / "imap_password")
    settings = inbound_settings(env, sink, inbound__imap=[box])
    sent = send_campaign(env, settings, PEOPLE, "Polled")
    return {**sent, "settings": settings, "box": settings["inbound.imap"][0]}


def _append(dovecot, message: bytes) -> None:  # noqa: F811
    client = dovecot.client()
    try:
        client.append("INBOX", message)
    finally:
        client.logout()


def _stored(env) -> int:
    with db.read(env.engine) as conn:
        return conn.execute(select(func.count()).select_from(inbound_messages).where(
            inbound_messages.c.source == "imap")).scalar_one()


def _state(env, subscriber_id: int) -> str:
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers.c.state).where(subscribers.c.id == subscriber_id)).scalar_one()


def test_poll_applies_bounces_and_sorts_the_mail_into_folders(env, world, sink, dovecot):  # noqa: F811
    original = sink.by_recipient(PEOPLE[0]["email"])[0]
    # The DSN as the mailbox holds it: addressed to the VERP Return-Path.
    _append(dovecot, reports.dsn(original.raw, recipient=PEOPLE[0]["email"]).replace(
        b"To: bounces@bounces.example.com", b"To: " + original.envelope_from.encode()))
    _append(dovecot, b"From: someone@example.org\r\nTo: fbl@example.com\r\nSubject: hello\r\n\r\nhi\r\n")
    result = imap.poll_all(env.engine, world["settings"])
    assert result[0]["fetched"] == 2 and result[0]["processed"] == 1 and result[0]["unmatched"] == 1
    assert _state(env, world["ids"][0]) == "bounced"
    assert dovecot.folders() == {"INBOX": 0, "Processed": 1, "Unmatched": 1}


def test_a_second_poll_reads_nothing_twice(env, world, dovecot):  # noqa: F811
    before = _stored(env)
    assert imap.poll_all(env.engine, world["settings"])[0]["fetched"] == 0
    assert _stored(env) == before


def test_a_message_stored_before_a_crash_is_not_applied_twice(env, world, sink, dovecot):  # noqa: F811
    """The poller died after storing, before moving: the next poll meets the same message."""
    original = sink.by_recipient(PEOPLE[1]["email"])[0]
    complaint = reports.arf(original.raw)
    _append(dovecot, complaint)
    client = dovecot.client()
    client.select_folder("INBOX")
    raw = next(iter(client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"]).values()))[b"BODY[]"]
    client.logout()
    with db.write(env.engine) as conn:
        first = intake.store(conn, raw, source="imap", rcpt=FBL)     # as the poller names it
    result = imap.poll_all(env.engine, world["settings"])[0]
    assert result["fetched"] == 1 and _state(env, world["ids"][1]) == "complained"
    with db.read(env.engine) as conn:
        assert conn.execute(select(func.count()).select_from(inbound_messages).where(
            inbound_messages.c.id >= first)).scalar_one() == 1
    assert dovecot.folders()["INBOX"] == 0


def test_a_wrong_password_is_noted_not_raised(env, world, dovecot, tmp_path):  # noqa: F811
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    settings = world["settings"].replace(inbound__imap=[{**world["box"], "password_file": str(wrong)}])
    result = imap.poll_all(env.engine, settings)
    assert "error" in result[0]
    with db.read(env.engine) as conn:
        status = imap.mailbox_status(conn, settings)
    assert status[0]["error"]


def test_intake_status_names_the_mailbox_and_its_last_error(env, world):
    """What the Inbound page's "Ways in" row shows (the wrong password above is the last error)."""
    with db.read(env.engine) as conn:
        row = next(w for w in overview.intake_status(conn, world["settings"]) if w["source"] == "imap")
    assert "fbl@example.com@127.0.0.1" in row["configured"]
    assert "LoginError" in row["error"]


def test_a_good_poll_clears_the_last_error(env, world):
    imap.poll_all(env.engine, world["settings"])
    with db.read(env.engine) as conn:
        assert imap.mailbox_status(conn, world["settings"])[0]["error"] == ""
