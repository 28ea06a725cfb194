"""The event buffer's back-pressure: a full buffer makes request threads wait until a flush
takes the rows (tracking/buffer.py), and the event loop leaves requests to them."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, func, select, update

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.tracking import buffer as buffer_module
from altkraft_onprem.tracking.buffer import EventBuffer
from altkraft_onprem.tracking.models import tracking_events
from tests.conftest import DB_KIND

CAMPAIGN = 95


def _open(subscriber_id: int) -> dict:
    return {"at": utcnow(), "kind": "open", "campaign_id": CAMPAIGN, "subscriber_id": subscriber_id,
            "version_id": 1, "link_index": None, "machine": False, "reason": None, "read_seconds": None,
            "read_class": None, "user_agent": "Mozilla/5.0 (Macintosh)", "ip": "192.0.2.1"}


def test_a_full_buffer_holds_requests_until_a_flush_takes_the_rows(env):
    buffer = EventBuffer()
    buffer.configure(env.settings.replace(tracking__flush_events=2, tracking__flush_interval_ms=3_600_000))
    room = 2 * buffer_module.ROOM_BATCHES
    for subscriber_id in range(room - 1):
        buffer.rows.append(_open(subscriber_id))          # as add() would, without its flush thread
    assert buffer.has_room()
    buffer.rows.append(_open(room))
    assert not buffer.has_room()

    waited = threading.Event()
    waiter = threading.Thread(target=lambda: (buffer.wait_for_room(), waited.set()))
    waiter.start()
    assert not waited.wait(0.3)                           # still held: nothing was written yet
    buffer.engine = env.engine
    assert buffer.flush() == room
    waiter.join(5)
    assert waited.is_set() and buffer.has_room()
    with db.read(env.engine) as conn:
        stored = conn.execute(select(func.count()).select_from(tracking_events)
                              .where(tracking_events.c.campaign_id == CAMPAIGN)).scalar()
    assert stored == room


def _backlog(env, rows: int, first: int) -> EventBuffer:
    buffer = EventBuffer()
    buffer.configure(env.settings.replace(tracking__flush_interval_ms=3_600_000))
    buffer.rows.extend(_open(first + n) for n in range(rows))
    buffer.engine = env.engine
    return buffer


@pytest.mark.skipif(DB_KIND != "sqlite", reason="Postgres writers do not exclude each other")
def test_a_sqlite_flush_writes_a_backlog_in_short_transactions(env):
    rows = 5 * buffer_module.SQLITE_TRANSACTION_ROWS
    buffer = _backlog(env, rows, 10_000)
    commits = []
    listener = lambda conn: commits.append(conn)       # noqa: E731
    event.listen(env.engine, "commit", listener)
    try:
        assert buffer.flush() == rows
    finally:
        event.remove(env.engine, "commit", listener)
    assert len(commits) == 5


def test_a_write_waiting_for_the_lock_gets_in_while_a_backlog_is_flushed(env):
    """A UI or API write waits for one flush transaction, not for the whole backlog."""
    buffer = _backlog(env, 10 * buffer_module.SQLITE_TRANSACTION_ROWS, 20_000)
    flushing, order = threading.Event(), []
    listener = lambda conn: flushing.set()             # noqa: E731

    def ordinary_write() -> None:
        flushing.wait(30)
        with db.write(env.engine) as conn:
            conn.execute(update(tracking_events).where(tracking_events.c.id == -1).values(reason="x"))
        order.append("write")

    writer = threading.Thread(target=ordinary_write)
    writer.start()
    event.listen(env.engine, "begin", listener)
    try:
        buffer.flush()
        order.append("flush")
    finally:
        event.remove(env.engine, "begin", listener)
        writer.join(30)
    assert order == ["write", "flush"]


@pytest.mark.skipif(DB_KIND != "postgres", reason="Postgres plans by its statistics")
def test_a_slow_scanner_check_refreshes_postgres_statistics(env):
    """A campaign whose clicks arrived after the last ANALYZE looks empty to the planner,
    which then reads all of its clicks for each chunk of clickers. A flush whose scanner check
    is that slow analyses the table; the next check is fast again."""
    from sqlalchemy import text

    campaign = 96
    with env.engine.connect() as conn:
        conn.execute(text("ALTER TABLE tracking_events SET (autovacuum_enabled = false)"))
        conn.execute(text("ANALYZE tracking_events"))                  # campaign 96: unknown
        conn.execute(text(
            "INSERT INTO tracking_events (at, kind, campaign_id, subscriber_id, version_id, link_index, "
            "machine, user_agent, ip) SELECT now() - (g % 5) * interval '1 second', 'click', :c, g % 100000, 1, "
            "g % 2, false, '', '' FROM generate_series(1, 300000) g"), {"c": campaign})
        analysed_before = conn.execute(text(
            "SELECT coalesce(analyze_count, 0) FROM pg_stat_user_tables WHERE relname = 'tracking_events'")).scalar()
        conn.commit()
    try:
        buffer = EventBuffer()
        buffer.configure(env.settings.replace(tracking__flush_interval_ms=3_600_000))
        buffer.engine = env.engine
        clicks = [dict(_open(200_000 + n), kind="click", campaign_id=campaign, link_index=0) for n in range(400)]
        buffer.rows.extend(clicks)
        buffer.flush()
        assert buffer.slow_check, "the check should have been slow with stale statistics"
        with env.engine.connect() as conn:
            analysed_after = conn.execute(text(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'tracking_events'")).scalar()
        assert analysed_after > analysed_before
        buffer.rows.extend(dict(c, subscriber_id=c["subscriber_id"] + 1000) for c in clicks)
        buffer.flush()
        assert not buffer.slow_check
    finally:
        with env.engine.connect() as conn:
            conn.execute(text("DELETE FROM tracking_events WHERE campaign_id = :c"), {"c": campaign})
            conn.execute(text("ALTER TABLE tracking_events RESET (autovacuum_enabled)"))
            conn.commit()
