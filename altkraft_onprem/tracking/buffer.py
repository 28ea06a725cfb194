"""The per-process event buffer: requests append, a background thread writes batches.

A tracking request never waits for the database: it appends a row and returns. A daemon
thread writes everything buffered as one INSERT (executemany) when `tracking.flush_events`
rows are waiting or `tracking.flush_interval_ms` has passed. On a graceful stop the server
calls `flush_at_exit()` (gunicorn's worker_exit hook, and atexit as a second line) after the
worker has finished its requests, so nothing answered is lost. A failed write keeps the rows
for the next attempt.

Back-pressure: at most ROOM_BATCHES x `tracking.flush_events` rows wait (30,000 by default:
a burst of a few seconds above the write rate, ~30 MB). When the database writes more slowly
than events arrive for longer (Postgres at ~10,000 opens/s on two cores), a full buffer makes
request threads wait for room (`wait_for_room`) and the event loop hand its requests to them
(tracking/worker.py), so answering slows down to the write rate instead of the backlog
growing until a graceful stop cannot write it in time.

The same transaction keeps the campaign roll-up (campaign_rollup.py: what the campaign report
reads) and the cohort roll-up (rollup.py), and labels security scanners: a recipient who clicked
`tracking.scanner_links` different links of one campaign within `tracking.scanner_window_seconds`,
or who clicked the hidden honeypot link, has those clicks marked machine=true, reason
"scanner" — across all web workers, because the check reads the table, not the buffer; the
campaign roll-up moves such clicks from the human to the machine figures.

SQLite has one writer at a time, and a flush transaction holds the lock every UI and API write
needs: under tracking load back-to-back flush transactions of 2,500 events (300-800 ms each)
made a PATCH of a subscriber wait seconds. On SQLite a flush transaction therefore writes at
most SQLITE_TRANSACTION_ROWS events (about 10 ms) and, when more are waiting, leaves the lock
free for a quarter of the time it held it (at least LOCK_GAP_SECONDS) — a waiting writer tries
every millisecond (db.begin_immediate), so it gets in after at most a transaction or two.
Postgres writers do not exclude each other: there a transaction takes CHUNK_BATCHES batches.

Postgres plans that check by the table's statistics, and a campaign whose clicks arrived since
the last ANALYZE looks empty to it: it scanned all of that campaign's clicks once per chunk of
clickers (~230 ms per 400 at 200,000 clicks, against ~1 ms with fresh statistics), and
autovacuum re-analyses a big table only after 10 % of it changed. A check slower than
SLOW_SCANNER_CHECK is that symptom: the flush thread then runs ANALYZE on the table (at
most every ANALYZE_EVERY seconds per process, skipped if another one holds the lock).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import timedelta

from sqlalchemy import Engine, and_, case, func, or_, select, update

from altkraft_onprem import db, events

from . import bulk, campaign_rollup, rollup
from .models import CLICK, HONEYPOT, SCANNER, tracking_events

log = logging.getLogger("altkraft.tracking")

# Set when the worker is asked to stop: held reading-time streams end at once (their hold
# time so far is recorded) so that the graceful stop does not wait for the 30 s cap.
stopping = threading.Event()
ROOM_BATCHES = 60
CHUNK_BATCHES = 5
# How long a request waits for room at most: with the database down the rows stay in memory
# (as before) rather than the requests hanging.
ROOM_WAIT_SECONDS = 10.0
SQLITE_TRANSACTION_ROWS = 200
LOCK_GAP_SECONDS = 0.002
SLOW_SCANNER_CHECK = 0.05
ANALYZE_EVERY = 60.0


class EventBuffer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)
        self.flush_lock = threading.Lock()
        self.wake = threading.Event()
        self.batch_size = 500
        self.interval = 1.0
        self.window = 10.0
        self.links = 3
        self._reset()

    def _reset(self) -> None:
        """After a fork: the parent's rows and flush thread are not ours (its settings are)."""
        self.rows: list[dict] = []
        self.engine: Engine | None = None
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()
        self.stored = 0
        self.slow_check = False         # the last scanner check hinted at stale statistics
        self.analyzed_at = float("-inf")

    def configure(self, settings) -> None:
        self.batch_size = settings["tracking.flush_events"]
        self.interval = settings["tracking.flush_interval_ms"] / 1000
        self.window = settings["tracking.scanner_window_seconds"]
        self.links = settings["tracking.scanner_links"]

    def add(self, engine: Engine, row: dict) -> None:
        with self.lock:
            if self.pid != os.getpid():          # forked: the parent's rows are not ours
                self._reset()
            self.engine = engine
            self.rows.append(row)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="tracking-flush", daemon=True)
                self.thread.start()
            if len(self.rows) >= self.batch_size:
                self.wake.set()

    def pending(self) -> int:
        with self.lock:
            return len(self.rows)

    def has_room(self) -> bool:
        return len(self.rows) < self.batch_size * ROOM_BATCHES

    def wait_for_room(self) -> None:
        """Blocks (a request thread) while the buffer is full."""
        if self.has_room():
            return
        with self.room:
            self.room.wait_for(self.has_room, ROOM_WAIT_SECONDS)

    def _run(self) -> None:
        while True:
            self.wake.wait(self.interval)
            self.wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - logged; the rows stay for the next attempt
                log.exception("writing tracking events failed; will retry")

    def flush(self) -> int:
        """Write everything buffered now, in bounded transactions (see the module's docstring;
        a full buffer also gets room back chunk by chunk, not once per whole backlog); returns
        the number of rows written."""
        written, gap = 0, 0.0
        with self.flush_lock:
            while True:
                if gap and self.pending():
                    time.sleep(gap)             # other writers' turn for the SQLite write lock
                with self.lock:
                    engine = self.engine
                    chunk = self._transaction_rows(engine)
                    batch, self.rows = self.rows[:chunk], self.rows[chunk:]
                    self.room.notify_all()
                if not batch or engine is None:
                    return written
                started = time.perf_counter()
                self._write(engine, batch)
                written += len(batch)
                if db.is_sqlite(engine):
                    gap = max(LOCK_GAP_SECONDS, (time.perf_counter() - started) / 4)

    def _transaction_rows(self, engine: Engine | None) -> int:
        if engine is not None and db.is_sqlite(engine):
            return min(self.batch_size, SQLITE_TRANSACTION_ROWS)
        return self.batch_size * CHUNK_BATCHES

    def _write(self, engine: Engine, batch: list[dict]) -> None:
        self.slow_check = False
        try:
            with db.write(engine) as conn:
                found = campaign_rollup.ledger(conn, {(r["campaign_id"], r["subscriber_id"]) for r in batch})
                self._label_early_clicks(batch, found)
                bulk.insert_rows(conn, tracking_events, batch)
                campaign_rollup.record(conn, batch, found)
                scanners = self._label_scanners(conn, batch)
                rollup.record(conn, [r for r in batch if r["kind"] != CLICK
                                     or (r["campaign_id"], r["subscriber_id"]) not in scanners])
                if events.EMAIL_TRACKED.has_handlers:     # workflows and webhooks (outbox)
                    events.EMAIL_TRACKED.emit(conn, events=[_tracked(r, scanners) for r in batch])
        except BaseException:
            with self.lock:
                self.rows[:0] = batch
            raise
        self.stored += len(batch)
        if self.slow_check and engine.dialect.name == "postgresql":
            self._analyze(engine)

    def _analyze(self, engine: Engine) -> None:
        """Fresh statistics for tracking_events (see the module's docstring)."""
        now = time.monotonic()
        if now - self.analyzed_at < ANALYZE_EVERY:
            return
        self.analyzed_at = now
        started = time.perf_counter()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")   # this transaction only
                conn.exec_driver_sql(f"ANALYZE {tracking_events.name}")
                conn.commit()
        except Exception as exc:  # noqa: BLE001 - an optimisation: the flush went through
            log.info("ANALYZE of %s skipped: %s", tracking_events.name, exc)
            return
        log.info("scanner check was slow: analysed %s in %.2f s", tracking_events.name,
                 time.perf_counter() - started)

    def _label_early_clicks(self, batch: list[dict], found: dict) -> None:
        """Clicks within the scanner window after the message was handed over: a mail
        gateway's link scanner, not the recipient (who has not even seen it yet)."""
        window = timedelta(seconds=self.window)
        for row in batch:
            if row["kind"] != CLICK or row["machine"]:
                continue
            state, done_at, _ = found.get((row["campaign_id"], row["subscriber_id"]), (None, None, 0))
            if state == "sent" and done_at is not None and row["at"] - done_at <= window:
                row["machine"], row["reason"] = True, SCANNER

    def _label_scanners(self, conn, batch: list[dict]) -> set[tuple[int, int]]:
        """Labels scanners' clicks in the table; returns their (campaign, subscriber) pairs."""
        pairs = {(r["campaign_id"], r["subscriber_id"]) for r in batch if r["kind"] == CLICK}
        if not pairs:
            return set()
        honeypots = {(r["campaign_id"], r["subscriber_id"]) for r in batch
                     if r["kind"] == CLICK and r["reason"] == HONEYPOT}
        since = min(r["at"] for r in batch) - timedelta(seconds=self.window)
        ev = tracking_events.c
        suspects = set(honeypots)
        # a honeypot fetched in an earlier batch (scanners fetch links in any order) counts too
        honeypot = func.max(case((ev.reason == HONEYPOT, 1), else_=0))
        links = func.count(func.distinct(ev.link_index))
        started = time.perf_counter()
        for campaign, ids in campaign_rollup.per_campaign(pairs - honeypots):
            # "machine IN (false, true)" names the index column between kind and subscriber_id
            # (ix_tracking_events_campaign): without it SQLite read every click of the campaign
            # for each chunk of 400 clickers, a flush slower with every click (Postgres too
            # until its statistics are fresh: ~1,700 clicks written per second at 200,000)
            rows = conn.execute(
                select(ev.subscriber_id, func.min(ev.at), func.max(ev.at), honeypot)
                .where(ev.campaign_id == campaign, ev.kind == CLICK, ev.machine.in_((False, True)),
                       ev.subscriber_id.in_(ids), ev.at >= since)
                .group_by(ev.subscriber_id)
                .having(or_(links >= self.links, honeypot == 1)))
            for subscriber_id, first, last, hit_honeypot in rows:
                if hit_honeypot or (last - first).total_seconds() <= self.window:
                    suspects.add((campaign, subscriber_id))
        self.slow_check = time.perf_counter() - started > SLOW_SCANNER_CHECK
        if not suspects:
            return suspects
        flipping = and_(ev.kind == CLICK, ev.at >= since, ev.machine.is_(False),
                        or_(*(and_(ev.campaign_id == c, ev.subscriber_id == s) for c, s in suspects)))
        campaign_rollup.relabel_clicks(conn, flipping, suspects)
        conn.execute(update(tracking_events).where(flipping).values(machine=True, reason=SCANNER))
        campaign_rollup.forget_human_clickers(conn, suspects)
        return suspects


BUFFER = EventBuffer()


def _tracked(row: dict, scanners: set) -> dict:
    """One event as the email.tracked domain event carries it (plain values)."""
    machine = bool(row["machine"]) or (row["kind"] == CLICK and (
        row["campaign_id"], row["subscriber_id"]) in scanners)
    return {"kind": row["kind"], "campaign_id": row["campaign_id"],
            "subscriber_id": row["subscriber_id"], "link_index": row.get("link_index"),
            "machine": machine, "at": row["at"].isoformat()}


def flush_at_exit() -> None:
    """Called once a worker has finished its requests (worker_exit hook, atexit)."""
    stopping.set()
    if BUFFER.pid != os.getpid():
        return
    for _ in range(3):
        try:
            BUFFER.flush()
            return
        except Exception:  # noqa: BLE001
            log.exception("writing tracking events at exit failed; retrying")


atexit.register(flush_at_exit)
