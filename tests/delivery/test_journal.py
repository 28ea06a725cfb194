"""The senders' reply journal: a reply is safe once journaled, the parent commits later, and
after a crash the journal of a dead sender reaches the ledger before `ledger.recover` runs."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.service import audience_query
from altkraft_onprem.campaigns import journal, ledger
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.journal import Journal
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.delivery import smtp
from altkraft_onprem.sending import fanout, sender
from altkraft_onprem.sending.compose import composers
from tests.campaigns.helpers import make_campaign, make_list, make_message, sending_settings, start
from tests.smtp_sink import SmtpSink


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _dead_owner() -> str:
    """A lease holder name on this host, since this boot, whose process is gone."""
    return ledger.owner_name(pid=_dead_pid())


def _claimed(env, people: int, name: str, owner: str):
    list_id, _ = make_list(env, name, [{"email": f"{name}{i}@example.net"} for i in range(people)])
    campaign_id = make_campaign(env, make_message(env), [list_id])
    with db.write(env.engine) as conn:
        ledger.materialise(conn, campaign_id, audience_query(conn, [list_id], [], [], []))
        rows = ledger.claim(conn, campaign_id, owner, people, 300)
    return campaign_id, [row_id for row_id, _ in rows]


def _rows(env, campaign_id: int) -> list[dict]:
    with db.read(env.engine) as conn:
        return [dict(r) for r in conn.execute(select(deliveries).where(
            deliveries.c.campaign_id == campaign_id).order_by(deliveries.c.id)).mappings()]


def test_a_record_is_journaled_before_record_returns_and_committed_by_the_parent(env):
    owner = ledger.owner_name()
    campaign_id, rows = _claimed(env, 3, "journaled", owner)
    folder = env.data_dir / "journal-live"
    record_r, record_w = os.pipe()
    ack_r, ack_w = os.pipe()
    outcomes: list = []
    parent = threading.Thread(target=lambda: outcomes.extend(
        fanout._serve(env.engine, [(0, record_r, ack_w)])))
    recorder = fanout.PipeRecorder(record_w, ack_r, Journal(folder, owner))
    path = recorder.journal.path
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    for row_id in rows:        # the parent is not running yet: only the journal has them
        assert recorder.record(row_id, owner, "sent", {"reply": "250 OK", "message_id": f"<{row_id}@x>"})
    assert [r[0] for r in journal._read(path)[1]] == rows
    assert journal._read(path)[0] == owner
    assert {r["state"] for r in _rows(env, campaign_id)} == {"leased"}
    parent.start()
    try:
        assert recorder.settle() is True
        assert [r["state"] for r in _rows(env, campaign_id)] == ["sent"] * 3
        assert journal._read(path) == (owner, [])             # emptied once committed
        recorder.finish(sender.Outcome(sent=3))
        assert not path.exists()                              # a clean stop removes it
    finally:
        os.close(record_w)
        parent.join(timeout=30)
        for fd in (record_r, ack_r, ack_w):
            os.close(fd)
    assert not parent.is_alive() and outcomes[0].sent == 3


def test_replay_records_a_dead_senders_journal_before_recover(env):
    owner = _dead_owner()
    campaign_id, rows = _claimed(env, 7, "replayed", owner)
    folder = env.data_dir / "journal-dead"
    book = Journal(folder, owner)
    book.append(rows[0], "sent", {"reply": "250 2.0.0 queued", "message_id": "<a@example.com>"})
    book.append(rows[1], "failed", {"reply": "550 no such user"})
    book.append(rows[2], "queued", {"reply": "will retry: 451", "retry_at": campaigns.utcnow()})
    book.append(rows[3], "skipped", {"reply": "unsubscribed", "counted": False})
    book.append(rows[4], "in_doubt", {"reply": "relay dropped the connection during DATA"})
    os.write(book.fd, b'[%d, "sent", "250 tor' % rows[5])      # killed inside the write
    os.close(book.fd)
    (folder / "999-empty.jsonl").write_bytes(b"")                # killed before its header
    os.utime(folder / "999-empty.jsonl", (0, 0))

    assert journal.replay(env.engine, folder) == 5
    with db.write(env.engine) as conn:
        assert ledger.recover(conn, campaign_id) == 1
    found = _rows(env, campaign_id)
    assert [r["state"] for r in found] == ["sent", "failed", "queued", "skipped", "in_doubt",
                                           "in_doubt", "queued"]
    assert found[4]["reply"] == "relay dropped the connection during DATA"
    assert found[0]["message_id"] == "<a@example.com>" and found[0]["reply"] == "250 2.0.0 queued"
    assert found[2]["next_attempt_at"] is not None and found[2]["attempts"] == 1
    assert found[3]["attempts"] == 0
    assert list(folder.iterdir()) == []
    assert journal.replay(env.engine, folder) == 0


def test_replay_leaves_a_living_senders_journal_alone(env):
    owner = ledger.owner_name()                                 # this process: alive
    campaign_id, rows = _claimed(env, 2, "living", owner)
    folder = env.data_dir / "journal-living"
    book = Journal(folder, owner)
    book.append(rows[0], "sent", {"reply": "250 OK", "message_id": "<l@example.com>"})
    assert journal.replay(env.engine, folder) == 0
    assert book.path.exists()
    assert {r["state"] for r in _rows(env, campaign_id)} == {"leased"}
    book.remove()


@pytest.fixture()
def pipelining_sink():
    server = SmtpSink(pipelining=True).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_sender_killed_with_nothing_committed_loses_no_reply(env, pipelining_sink):
    """A real sender process whose parent never commits (as if the parent died first): it
    sends its first batch, then waits for the commits before claiming more; kill -9. Every
    reply it had is in its journal: after replay and recover the ledger says sent for each
    message the sink accepted, except at most the one whose final dot was on its way."""
    smtp._pools.clear()
    settings, _ = sending_settings(env, pipelining_sink)
    list_id, _ = make_list(env, "Journal kill", [{"email": f"k{i}@example.net"} for i in range(40)])
    campaign_id = make_campaign(env, make_message(env), [list_id])
    start(env, settings, campaign_id)
    with db.read(env.engine) as conn:
        built = composers(conn, settings, campaign_id)
    pid, record_r, ack_w = fanout._fork_sender(settings, env.engine, campaign_id, 1, built, [])
    received = 0
    try:
        deadline = time.monotonic() + 60
        # The first claim takes 20 rows; their records arrive here and are never answered.
        while received < 19 and time.monotonic() < deadline:
            chunk = os.read(record_r, 1 << 16)
            received += chunk.count(b"record")
        time.sleep(0.3)                 # the sender is now blocked waiting for the commits
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(record_r)
        os.close(ack_w)
    assert received >= 19
    with db.read(env.engine) as conn:
        assert ledger.counts(conn, campaign_id)["sent"] == 0      # nothing was committed
    folder = journal.directory(settings)
    assert journal.replay(env.engine, folder) >= 19
    with db.write(env.engine) as conn:
        ledger.recover(conn, campaign_id)
        counts = ledger.counts(conn, campaign_id)
    accepted = set(pipelining_sink.recipients())
    found = _rows(env, campaign_id)
    with db.read(env.engine) as conn:
        from altkraft_onprem.audience.models import subscribers
        email_of = dict(conn.execute(select(subscribers.c.id, subscribers.c.email)).all())
    sent = {email_of[r["subscriber_id"]] for r in found if r["state"] == "sent"}
    assert sent <= accepted and len(accepted - sent) <= counts["in_doubt"] <= 1
    assert counts["sent"] >= 19 and counts["queued"] == 40 - counts["sent"] - counts["in_doubt"]
    assert list(folder.glob("*.jsonl")) == []


@pytest.mark.parametrize("owner", [
    "elsewhere.example.net:4242:0badf00d.1234abcd",            # another host's sender
    f"{ledger.HOST}:{_dead_pid()}:0badf00d.1234abcd",           # this host, before a reboot
], ids=["other host", "before a reboot"])
def test_a_holder_whose_journal_may_be_lost_leaves_the_window_in_doubt(env, owner):
    """Its last replies may be in a journal nobody can replay: as many rows as a sender may
    have had uncommitted, plus the one at the relay, are in doubt; the rest is queued."""
    people = ledger.UNCOMMITTED_WINDOW + 8
    campaign_id, rows = _claimed(env, people, f"window{abs(hash(owner)) % 1000}", owner)
    later = campaigns.utcnow() + timedelta(minutes=10)             # the lease has expired
    with db.write(env.engine) as conn:
        assert ledger.recover(conn, campaign_id, now=later) == 1
    states = [r["state"] for r in _rows(env, campaign_id)]
    doubtful = ledger.UNCOMMITTED_WINDOW + 1
    assert states == ["in_doubt"] * doubtful + ["queued"] * (people - doubtful)


def test_a_sender_sends_no_dot_with_more_than_the_window_uncommitted(env):
    owner = ledger.owner_name()
    record_r, record_w = os.pipe()
    ack_r, ack_w = os.pipe()
    recorder = fanout.PipeRecorder(record_w, ack_r, Journal(env.data_dir / "journal-window", owner))
    try:
        for row_id in range(ledger.UNCOMMITTED_WINDOW):
            recorder.record(row_id, owner, "sent", {"reply": "250 OK"})
        assert recorder.check() is True                 # at the window: no waiting
        recorder.record(10_000, owner, "sent", {"reply": "250 OK"})
        threading.Timer(0.3, lambda: os.write(ack_w, b"1")).start()
        started = time.monotonic()
        assert recorder.check() is True                 # above it: waits for a commit
        assert time.monotonic() - started > 0.2
        assert recorder.outstanding == ledger.UNCOMMITTED_WINDOW
    finally:
        recorder.journal.remove()
        for fd in (record_r, record_w, ack_r, ack_w):
            os.close(fd)
