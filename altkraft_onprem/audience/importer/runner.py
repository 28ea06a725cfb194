"""Running an import (the body of the background job): read, validate, de-duplicate, write.

The reading side (reader.py) turns the file into batches of validated, de-duplicated
records, in a child process for a large file; this side writes each batch in one
transaction, so progress is visible while the import runs and a crash keeps the batches
already done.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from altkraft_onprem import db, events
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience.jobs import send_confirmation
from altkraft_onprem.audience.models import custom_index_name, lists, subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError

from .archives import Limits
from .models import COUNT_KEYS, IMPORT_SOURCE, import_rejects, imports
from .reader import Reader, ReaderProcess, raw_line, unpacked_cells
from .service import BATCH, Progress, custom_definitions, discard_upload, get_import
from .watchdog import Heartbeat
from .writer import BatchWriter, Record, WriteOptions

log = logging.getLogger(__name__)


def _claim(engine: Engine, import_id: int) -> dict | None:
    with db.write(engine) as conn:
        claimed = conn.execute(update(imports).where(imports.c.id == import_id, imports.c.state == "queued")
                               .values(state="running", started_at=utcnow(), heartbeat_at=utcnow())).rowcount
        if not claimed:
            return None
        row = conn.execute(select(imports).where(imports.c.id == import_id)).first()
        return dict(row._mapping)


def _finish(engine: Engine, import_id: int, state: str, error: str | None = None,
            **values) -> None:
    with db.write(engine) as conn:
        conn.execute(update(imports).where(imports.c.id == import_id).values(
            state=state, error=error, finished_at=utcnow(), **values))
        counts = conn.execute(select(imports.c.counts).where(imports.c.id == import_id)).scalar()
        events.IMPORT_FINISHED.emit(conn, import_id=import_id, state=state,
                                    counts=json.loads(counts or "{}"))


class Run:
    """One import's writing side: counts, the batch writer, progress. A transaction takes
    the batches that arrive within COMMIT_S (one batch when they come slower), so progress is
    visible while the import runs and a crash keeps what was committed; fewer commits write
    the same index pages fewer times."""

    def __init__(self, engine: Engine, job: dict, progress: Progress | None):
        self.engine, self.job, self.progress = engine, job, progress
        self.id = job["id"]
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.rows_done = 0
        self.started = time.monotonic()
        self._opened: float | None = None       # when the open transaction began
        self.writer = BatchWriter(WriteOptions(
            list_ids=json.loads(job["list_ids"]), mode=job["mode"], status=job["status"],
            source=IMPORT_SOURCE % self.id, activity={"import": self.id},
            consent_form=f"import #{self.id} ({job['filename']})",
            double_optin=double_optin_lists(engine, json.loads(job["list_ids"])),
            import_id=self.id))

    def write(self, conn: Connection, message: tuple) -> None:
        """One "batch" message of the reader (see reader.py); commits when it is time."""
        _, records, places, rejects, self.rows_done, invalid, duplicates = message
        counts = self.counts
        counts["invalid"], counts["duplicates"] = invalid, duplicates
        now = utcnow()
        if self._opened is None:
            conn.begin()
            self._opened = time.monotonic()
        if records:
            outcomes = self.writer.write(conn, list(map(Record._make, records)), now)
            for outcome, (member, line, raw) in zip(outcomes, places, strict=True):
                counts[outcome.status] += 1
                if outcome.status == "suppressed":
                    rejects.append({"import_id": self.id, "line": line, "member": member[:300],
                                    "reason": outcome.error or "suppressed",
                                    "raw": raw_line(unpacked_cells(raw))})
        if rejects:
            conn.execute(insert(import_rejects), rejects)
        conn.execute(update(imports).where(imports.c.id == self.id).values(
            rows_done=self.rows_done, counts=json.dumps(counts), heartbeat_at=now))
        if time.monotonic() - self._opened >= COMMIT_S:
            self.commit(conn)

    def commit(self, conn: Connection) -> None:
        """Commits what was written; then the confirmation emails go out and progress shows."""
        if self._opened is None:
            return
        conn.commit()
        db.run_after_commit(conn)
        self._opened = None
        self.send_confirmations()
        counts = self.counts
        if self.progress is not None:
            self.progress({"rows_done": self.rows_done, "counts": dict(counts),
                           "rows_per_s": self.rows_done / max(time.monotonic() - self.started, 1e-6)})

    def send_confirmations(self) -> None:
        """Unconfirmed people on double opt-in lists get the confirmation email (queued)."""
        pending, self.writer.confirmations = self.writer.confirmations, []
        queue_confirmations(pending)


def queue_confirmations(pending: list[tuple[int, int]]) -> None:
    """Enqueues the audience's confirmation email job per (subscriber, list)."""
    if not pending:
        return

    for subscriber_id, list_id in pending:
        try:
            send_confirmation(subscriber_id, list_id)
        except Exception:  # noqa: BLE001 - a queue hiccup must not fail the import
            log.exception("could not queue the confirmation for subscriber %s", subscriber_id)


def double_optin_lists(engine: Engine, list_ids: list[int]) -> frozenset[int]:
    if not list_ids:
        return frozenset()
    with db.read(engine) as conn:
        return frozenset(conn.execute(select(lists.c.id).where(
            lists.c.id.in_(list_ids), lists.c.optin == "double")).scalars())


# --- bulk loading on SQLite ------------------------------------------------------------------

BULK_ROWS = 50_000


def _custom_keys(engine: Engine) -> list[str]:
    with db.read(engine) as conn:
        return list(field_service.definitions(conn))


def restore_custom_indexes(engine: Engine) -> None:
    """Every custom field has its expression index (CREATE INDEX IF NOT EXISTS: cheap when
    it does; rebuilds one a crashed bulk import left dropped)."""
    keys = _custom_keys(engine)
    if keys:
        with db.write(engine) as conn:
            for key in keys:
                conn.execute(text(field_service.index_ddl(conn.dialect.name, key)))


def imports_running(engine: Engine) -> bool:
    with db.read(engine) as conn:
        return conn.execute(select(imports.c.id).where(imports.c.state == "running").limit(1)).first() \
            is not None


def _bulk_mode(engine: Engine, estimated_rows: int | None) -> bool:
    """SQLite maintains JSON expression indexes row by row at several times the cost of
    building them once: a large import into a table not much bigger than it drops the
    custom-field indexes and rebuilds them at the end (segments are slower meanwhile)."""
    if engine.dialect.name != "sqlite" or not estimated_rows or estimated_rows < BULK_ROWS:
        return False
    with db.read(engine) as conn:
        existing = conn.execute(select(func.count()).select_from(subscribers)).scalar_one()
    return existing <= estimated_rows * 2


def _drop_custom_indexes(engine: Engine) -> None:
    keys = _custom_keys(engine)
    with db.write(engine) as conn:
        for key in keys:
            conn.execute(text(f"DROP INDEX IF EXISTS {custom_index_name(key)}"))


def estimate_rows(path: Path, filename: str) -> int | None:
    """Lines in a plain text file (the header included), for the progress bar."""
    if filename.lower().endswith((".zip", ".tar.gz", ".tgz", ".tar", ".xls", ".xlsx")):
        return None
    count = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return max(count, 1)


def run_import(engine: Engine, import_id: int, *, limits: Limits | None = None,
               progress: Progress | None = None, batch_size: int = BATCH,
               reader_process: bool | None = None) -> dict:
    """Run a queued import to its end; returns its final state. A second call does nothing.
    `reader_process`: read in a forked child (default: when the file is large enough)."""
    job = _claim(engine, import_id)
    if job is None:
        with db.read(engine) as conn:
            return get_import(conn, import_id)
    with Heartbeat(engine, import_id), _fewer_gc_passes():
        _run_claimed(engine, job, limits or Limits(), progress, batch_size, reader_process)
    with db.read(engine) as conn:
        return get_import(conn, import_id)


_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None
IMPORT_GC_THRESHOLD = 50_000


@contextmanager
def _fewer_gc_passes():
    """An import allocates a few small containers per row, all freed by reference counting;
    with the default threshold (700) the cyclic collector runs every ~100 rows and costs a
    quarter of the import's CPU. Raised while any import runs in this process."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], IMPORT_GC_THRESHOLD), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)


# Batches that arrive within this many seconds share a transaction.
COMMIT_S = 1.0
# A reader process pays for its fork and for pickling every batch: worth it from a few
# thousand rows on.
READER_PROCESS_BYTES = 1 << 20
# SQLite page cache of the import's connection: the email index of a million subscribers
# (about 50 MB) stays in memory instead of being re-read for every batch.
IMPORT_CACHE_KIB = 96 * 1024
# A batch dirties pages all over the email index; copying them to the database file after
# every commit (the default, 1000 pages) writes the same pages again and again.
IMPORT_CHECKPOINT_PAGES = 25_000


@contextmanager
def _writing_connection(engine: Engine) -> Iterator[Connection]:
    """One connection for the whole import; on SQLite with a larger page cache and temporary
    data in memory. It never goes back to the pool with those settings."""
    with engine.execution_options(sqlite_begin="IMMEDIATE").connect() as conn:
        if conn.dialect.name != "sqlite":
            yield conn
            return
        conn.exec_driver_sql(f"PRAGMA cache_size=-{IMPORT_CACHE_KIB}")
        conn.exec_driver_sql("PRAGMA temp_store=MEMORY")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={IMPORT_CHECKPOINT_PAGES}")
        conn.commit()
        try:
            yield conn
        finally:
            conn.invalidate()


def _run_claimed(engine: Engine, job: dict, limits: Limits, progress: Progress | None,
                 batch_size: int, reader_process: bool | None) -> None:
    path = Path(job["path"])
    try:
        with db.read(engine) as conn:
            custom = custom_definitions(conn)
        total = estimate_rows(path, job["filename"])
        if total is not None:
            with db.write(engine) as conn:
                conn.execute(update(imports).where(imports.c.id == job["id"]).values(rows_total=total))
        if _bulk_mode(engine, total):
            _drop_custom_indexes(engine)
        reader = Reader(job, limits, custom, batch_size)
        if reader_process is None:
            reader_process = hasattr(os, "fork") and path.stat().st_size >= READER_PROCESS_BYTES
        run = Run(engine, job, progress)
        failure = None
        with (ReaderProcess(reader) if reader_process else nullcontext(reader.messages())) as messages, \
                _writing_connection(engine) as conn:
            for message in messages:
                if message[0] == "batch":
                    run.write(conn, message)
                elif message[0] == "failed":
                    failure = message[1]
            run.commit(conn)
    except ServiceError as exc:
        _finish(engine, job["id"], "failed", exc.message)
    except Exception as exc:  # noqa: BLE001 - the import ends failed, with the reason, not stuck
        log.exception("import %s failed", job["id"])
        _finish(engine, job["id"], "failed", f"internal error: {type(exc).__name__}: {exc}")
    else:
        if failure is not None:
            _finish(engine, job["id"], "failed", failure)
        else:
            # error None: a sweep may have taken a very slow import for a dead one
            _finish(engine, job["id"], "finished", None, rows_total=run.rows_done)
    finally:
        discard_upload(path)
        restore_custom_indexes(engine)
