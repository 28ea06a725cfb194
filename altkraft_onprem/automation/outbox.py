"""The domain-event outbox and its dispatcher.

`append` is a domain-event handler (connected in reactions.py): it writes one row in the
transaction of the change it describes — only for the events something listens to (an
active webhook subscription or workflow, see interest.py), so a campaign of a million
messages writes no outbox rows when nobody asked for delivery events.

`dispatch` takes pending rows oldest first — on Postgres with FOR UPDATE SKIP LOCKED, so
dispatchers on several machines never take the same row; the row locks held until the
commit are the lease — and fans each out (webhook deliveries, workflow enrollments) in the
same transaction that marks it dispatched. Every fan-out insert is under a UNIQUE key, so
even a row handed out twice could not deliver or enroll twice. One row whose fan-out fails
is rolled back alone (a savepoint) and marked dispatched with its error, never retried in
a loop. The queue only wakes the dispatcher; the minute tick finds whatever a lost wake-up
left behind.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow

from . import interest
from .models import outbox

log = logging.getLogger("altkraft.automation")
BATCH = 200
WAKE_KEY = "automation.dispatch"

# Takes a batch of outbox rows, oldest first, and acts on each in order.
FanOut = Callable[[Connection, list[dict]], None]


def append(conn: Connection, name: str, payload: dict, wake: Callable[[], None] | None = None,
           occurred_at: datetime | None = None) -> int | None:
    """Records one event (if anything listens to it); `wake` runs after the commit."""
    if not interest.wants(conn, name):
        return None
    row_id = conn.execute(insert(outbox).values(
        type=name, payload=payload, occurred_at=occurred_at or utcnow())
        .returning(outbox.c.id)).scalar_one()
    if wake is not None:
        db.after_commit(conn, WAKE_KEY, wake)
    return row_id


def append_many(conn: Connection, name: str, payloads: list[dict],
                wake: Callable[[], None] | None = None) -> int:
    """Records several events of one kind in one statement (if anything listens to it)."""
    if not payloads or not interest.wants(conn, name):
        return 0
    now = utcnow()
    conn.execute(insert(outbox), [{"type": name, "payload": payload, "occurred_at": now}
                                  for payload in payloads])
    if wake is not None:
        db.after_commit(conn, WAKE_KEY, wake)
    return len(payloads)


def pending_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(outbox).where(
        outbox.c.dispatched_at.is_(None))).scalar_one()


def _claim(conn: Connection, size: int) -> list[dict]:
    query = select(outbox.c.id, outbox.c.type, outbox.c.payload, outbox.c.occurred_at).where(
        outbox.c.dispatched_at.is_(None)).order_by(outbox.c.id).limit(size)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(r._mapping) for r in conn.execute(query)]


def dispatch(engine: Engine, fan_outs: list[FanOut], batch: int = BATCH,
             max_batches: int | None = None) -> int:
    """Dispatches pending rows until none is left (or `max_batches`); returns how many."""
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with db.write(engine) as conn:
            rows = _claim(conn, batch)
            errors = _fan_out(conn, fan_outs, rows)
            now = utcnow()
            clean = [row["id"] for row in rows if row["id"] not in errors]
            if clean:
                conn.execute(update(outbox).where(outbox.c.id.in_(clean)).values(dispatched_at=now))
            for row_id, error in errors.items():
                conn.execute(update(outbox).where(outbox.c.id == row_id).values(
                    dispatched_at=now, error=error))
        done += len(rows)
        batches += 1
        if len(rows) < batch:
            break
    return done


def _fan_out(conn: Connection, fan_outs: list[FanOut], rows: list[dict]) -> dict[int, str]:
    """All rows at once (each fan-out takes the batch in order); if that fails, row by row,
    each in its own savepoint: a row whose fan-out fails keeps its error and is not retried
    in a loop. Returns {row id: error}."""
    if not rows:
        return {}
    try:
        with conn.begin_nested():
            for fan_out in fan_outs:
                fan_out(conn, rows)
        return {}
    except Exception as exc:  # noqa: BLE001 - the bad row is found below
        if db.is_busy(exc):
            raise
    errors: dict[int, str] = {}
    for row in rows:
        try:
            with conn.begin_nested():
                for fan_out in fan_outs:
                    fan_out(conn, [row])
        except Exception as exc:  # noqa: BLE001 - one bad row must not block the rest
            if db.is_busy(exc):
                raise
            log.exception("outbox row %s (%s) could not be dispatched", row["id"], row["type"])
            errors[row["id"]] = f"{type(exc).__name__}: {exc}"[:1000]
    return errors


def purge_dispatched(conn: Connection, before: datetime) -> int:
    """Dispatched rows older than `before` go (the deliveries and enrollments remain)."""
    return conn.execute(delete(outbox).where(outbox.c.dispatched_at.is_not(None),
                                             outbox.c.dispatched_at < before)).rowcount
