"""Running an import (the body of the background job): read, validate, de-duplicate, write.

Reading and validating happen on the calling thread; each full batch is written on a writer
thread while the next one is validated. One transaction per batch, so progress is visible
while the import runs and a crash keeps the batches already done.
"""
from __future__ import annotations

import csv
import gc
import io
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, text, update

from altkraft_onprem import db
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience.models import custom_index_name, subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError

from . import mapping as mapping_rules
from .archives import Limits
from .models import COUNT_KEYS, import_rejects, imports
from .service import BATCH, Progress, custom_definitions, discard_upload, get_import
from .sources import open_tables
from .text import Table
from .validate import CustomField, RowError, Validator
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


def _finish(engine: Engine, import_id: int, state: str, error: str | None = None) -> None:
    with db.write(engine) as conn:
        conn.execute(update(imports).where(imports.c.id == import_id).values(
            state=state, error=error, finished_at=utcnow()))


def _raw_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().rstrip("\r\n")


class Run:
    """One import's state while it runs: counts, first lines of emails, pending rejects.

    Reading and validating happen on the calling thread; each full batch is written on a
    writer thread while the next one is validated (the database drivers release the GIL
    while the database works, so the two overlap). At most one batch waits."""

    def __init__(self, engine: Engine, job: dict, limits: Limits, progress: Progress | None,
                 batch_size: int = BATCH):
        self.engine, self.job, self.limits, self.progress = engine, job, limits, progress
        self.batch_size = batch_size
        self.id = job["id"]
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.rows_done = 0
        self.seen: dict[str, int | str] = {}
        self.rejects: list[dict] = []
        self.batch: list[Record] = []
        self.lines: list[tuple[str, int, list[str]]] = []
        self.started = time.monotonic()
        self.writer = BatchWriter(WriteOptions(
            list_ids=json.loads(job["list_ids"]), mode=job["mode"], status=job["status"],
            source=f"import:{self.id}", activity={"import": self.id},
            consent_form=f"import #{self.id} ({job['filename']})",
            double_optin=double_optin_lists(engine, json.loads(job["list_ids"]))))
        self.multi = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{self.id}")
        self._pending: Future | None = None

    def reject(self, line: int, member: str, reason: str, raw: str) -> None:
        self.rejects.append({"import_id": self.id, "line": line, "member": member[:300],
                             "reason": reason, "raw": raw})

    def table(self, table: Table, mapping: dict[str, str], custom: dict[str, CustomField]) -> None:
        member = table.name if self.multi else ""
        for note in table.notes:
            self.reject(0, table.name, note, "")
        peek = []
        for row in table.rows:
            peek.append(row)
            if len(peek) >= 20:
                break
        if not peek:
            return
        width = max([len(table.header or [])] + [len(cells) for _, cells in peek])
        labels = mapping_rules.column_names(table.header, width)
        columns = mapping_rules.resolve(mapping, table.header, width) if mapping else []
        if not any(target == "email" for _, target in columns):
            guessed = mapping_rules.auto_mapping(table.header, width, custom, [c for _, c in peek])
            columns = mapping_rules.resolve(guessed, table.header, width)
        try:
            validate = Validator(columns, custom, labels).check
        except RowError as exc:
            self.reject(0, table.name, f"{exc}; this table was not imported", "")
            return
        counts, seen, batch_size = self.counts, self.seen, self.batch_size
        for rows in (peek, table.rows):
            for line, cells in rows:
                self.rows_done += 1
                try:
                    email, values, custom_values = validate(cells)
                except RowError as exc:
                    counts["invalid"] += 1
                    self.reject(line, member, str(exc), _raw_line(cells))
                    continue
                first = seen.get(email)
                if first is not None:
                    counts["duplicates"] += 1
                    where = f"line {first}" if isinstance(first, int) else first
                    self.reject(line, member, f"duplicate of {where}: {email}", _raw_line(cells))
                    continue
                # In an archive the first occurrence may be in another member: name it.
                seen[email] = f"{member} line {line}" if member else line
                self.batch.append(Record(email, values, custom_values))
                self.lines.append((member, line, cells))
                if len(self.batch) >= batch_size:
                    self.flush()

    def flush(self, wait: bool = False) -> None:
        """Hands the batch (and the rejects so far) to the writer thread."""
        if self._pending is not None:
            self._pending.result()            # one batch in flight at most; errors surface here
        work = (self.batch, self.lines, self.rejects, self.rows_done)
        self.batch, self.lines, self.rejects = [], [], []
        self._pending = self._pool.submit(self._write, *work)
        if wait:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _write(self, batch: list[Record], lines, rejects: list[dict], rows_done: int) -> None:
        now = utcnow()
        with db.write(self.engine) as conn:
            if batch:
                outcomes = self.writer.write(conn, batch, now)
                for outcome, (member, line, cells) in zip(outcomes, lines, strict=True):
                    self.counts[outcome.status] += 1
                    if outcome.status == "suppressed":
                        rejects.append({"import_id": self.id, "line": line, "member": member[:300],
                                        "reason": outcome.error or "suppressed", "raw": _raw_line(cells)})
            if rejects:
                conn.execute(insert(import_rejects), rejects)
            conn.execute(update(imports).where(imports.c.id == self.id).values(
                rows_done=rows_done, counts=json.dumps(self.counts), heartbeat_at=now))
        self.send_confirmations()
        if self.progress is not None:
            self.progress({"rows_done": rows_done, "counts": dict(self.counts),
                           "rows_per_s": rows_done / max(time.monotonic() - self.started, 1e-6)})

    def send_confirmations(self) -> None:
        """Unconfirmed people on double opt-in lists get the confirmation email (queued)."""
        pending, self.writer.confirmations = self.writer.confirmations, []
        queue_confirmations(pending)


def queue_confirmations(pending: list[tuple[int, int]]) -> None:
    """Enqueues the audience's confirmation email job per (subscriber, list)."""
    if not pending:
        return
    from altkraft_onprem.audience.jobs import send_confirmation

    for subscriber_id, list_id in pending:
        try:
            send_confirmation(subscriber_id, list_id)
        except Exception:  # noqa: BLE001 - a queue hiccup must not fail the import
            log.exception("could not queue the confirmation for subscriber %s", subscriber_id)


def double_optin_lists(engine: Engine, list_ids: list[int]) -> frozenset[int]:
    from altkraft_onprem.audience.models import lists

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
               progress: Progress | None = None, batch_size: int = BATCH) -> dict:
    """Run a queued import to its end; returns its final state. A second call does nothing."""
    job = _claim(engine, import_id)
    if job is None:
        with db.read(engine) as conn:
            return get_import(conn, import_id)
    with Heartbeat(engine, import_id), _fewer_gc_passes():
        _run_claimed(engine, job, limits or Limits(), progress, batch_size)
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


def _run_claimed(engine: Engine, job: dict, limits: Limits, progress: Progress | None,
                 batch_size: int) -> None:
    path = Path(job["path"])
    options = json.loads(job["options"] or "{}")
    try:
        with db.read(engine) as conn:
            custom = custom_definitions(conn)
        total = estimate_rows(path, job["filename"])
        if total is not None:
            with db.write(engine) as conn:
                conn.execute(update(imports).where(imports.c.id == job["id"]).values(rows_total=total))
        if _bulk_mode(engine, total):
            _drop_custom_indexes(engine)
        run = Run(engine, job, limits, progress, batch_size)
        try:
            tables = open_tables(path, job["filename"], limits, has_header=options.get("has_header"),
                                 encoding=options.get("encoding"), delimiter=options.get("delimiter"))
            run.multi = job["filename"].lower().endswith((".zip", ".tar.gz", ".tgz", ".tar", ".xls", ".xlsx"))
            for table in tables:
                run.table(table, json.loads(job["mapping"] or "{}"), custom)
        finally:
            # Whatever happened, what was read is written and the rejects are kept.
            run.flush(wait=True)
            run.close()
    except ServiceError as exc:
        _finish(engine, job["id"], "failed", exc.message)
    except Exception as exc:  # noqa: BLE001 - the import ends failed, with the reason, not stuck
        log.exception("import %s failed", job["id"])
        _finish(engine, job["id"], "failed", f"internal error: {type(exc).__name__}: {exc}")
    else:
        with db.write(engine) as conn:
            conn.execute(update(imports).where(imports.c.id == job["id"]).values(
                # error: a sweep may have taken a very slow import for a dead one
                state="finished", finished_at=utcnow(), rows_total=run.rows_done, error=None))
    finally:
        discard_upload(path)
        restore_custom_indexes(engine)
