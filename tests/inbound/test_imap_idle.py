"""IMAP IDLE against a real Dovecot: `altkraft inbound`'s watcher reads new mail within seconds
of its arrival (long before any poll), the minute job leaves a watched mailbox alone, and a
server without IDLE (or a mailbox with idle = false) is polled instead."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.inbound import imap
from tests.inbound import reports
from tests.inbound.conftest import inbound_settings, send_campaign
from tests.inbound.imap_server import dovecot, running_dovecot  # noqa: F401  (fixture)

PEOPLE = [{"email": f"idle{i}@example.net"} for i in range(4)]
# Dovecot's capabilities without IDLE (what an older or stripped-down server offers).
NO_IDLE = "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE UIDPLUS MOVE\n"


@pytest.fixture(scope="module")
def plain_server():
    yield from running_dovecot(NO_IDLE)


@pytest.fixture(scope="module")
def world(env, sink, dovecot, plain_server, tmp_path_factory):  # noqa: F811
    secrets = tmp_path_factory.mktemp("secrets")
    boxes = [dovecot.mailbox(secrets / "idle"), plain_server.mailbox(secrets / "plain"),
             dovecot.mailbox(secrets / "off", folder="Off", idle=False)]
    settings = inbound_settings(env, sink, inbound__imap=boxes)
    sent = send_campaign(env, settings, PEOPLE, "Idle")
    client = dovecot.client()
    client.create_folder("Off")
    client.logout()
    return {**sent, "settings": settings, "boxes": settings["inbound.imap"]}


def _dsn(sink, index: int) -> bytes:
    original = sink.by_recipient(PEOPLE[index]["email"])[0]
    return reports.dsn(original.raw, recipient=PEOPLE[index]["email"]).replace(
        b"To: bounces@bounces.example.com", b"To: " + original.envelope_from.encode())


def _append(server, message: bytes, folder: str = "INBOX") -> None:
    client = server.client()
    try:
        client.append(folder, message)
    finally:
        client.logout()


def _state(env, subscriber_id: int) -> str:
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers.c.state).where(subscribers.c.id == subscriber_id)).scalar_one()


def _until(check, timeout: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "not in time"
        time.sleep(0.05)
    return time.monotonic() - started


def _status(env, world, index: int) -> dict:
    with db.read(env.engine) as conn:
        return imap.mailbox_status(conn, world["settings"])[index]


@pytest.fixture()
def watcher(env, world):
    started = []

    def start(index: int, **options) -> imap.Watcher:
        running = imap.Watcher(env.engine, world["settings"], world["boxes"][index], **options).start()
        started.append(running)
        return running
    yield start
    for running in started:
        running.stop()


def test_idle_reads_new_mail_within_seconds(env, world, sink, dovecot, watcher):  # noqa: F811
    running = watcher(0, poll_seconds=3600)        # no poll could be what reads it
    _until(lambda: _status(env, world, 0)["mode"] == "idle", 20)
    _append(dovecot, _dsn(sink, 0))
    took = _until(lambda: _state(env, world["ids"][0]) == "bounced", 20)
    assert took < 15 and running.mode == "idle"
    _until(lambda: dovecot.folders()["Processed"] == 1, 5)
    assert dovecot.folders()["INBOX"] == 0


def test_the_minute_job_leaves_a_watched_mailbox_alone(env, world, watcher):
    watcher(0, poll_seconds=3600)
    _until(lambda: _status(env, world, 0)["mode"] == "idle", 20)
    settings = world["settings"].replace(inbound__imap=[world["boxes"][0]])
    assert imap.poll_all(env.engine, settings) == [{"mailbox": imap.state_key(world["boxes"][0]),
                                                    "watched": True}]


def test_a_stopped_watcher_lets_the_minute_job_poll_again(env, world):
    settings = world["settings"].replace(inbound__imap=[world["boxes"][0]])
    result = imap.poll_all(env.engine, settings)[0]
    assert "watched" not in result and result["fetched"] == 0
    assert _status(env, world, 0)["mode"] == ""


def test_a_server_without_idle_is_polled(env, world, sink, plain_server, watcher):
    running = watcher(1, poll_seconds=1)
    _until(lambda: _status(env, world, 1)["mode"] == "polling", 20)
    _append(plain_server, _dsn(sink, 1))
    _until(lambda: _state(env, world["ids"][1]) == "bounced", 20)
    assert running.mode == "polling"
    assert plain_server.folders()["Processed"] == 1


def test_a_mailbox_with_idle_off_is_polled(env, world, sink, dovecot, watcher):  # noqa: F811
    running = watcher(2, poll_seconds=1)
    _until(lambda: _status(env, world, 2)["mode"] == "polling", 20)
    _append(dovecot, _dsn(sink, 2), folder="Off")
    _until(lambda: _state(env, world["ids"][2]) == "bounced", 20)
    assert running.mode == "polling"
