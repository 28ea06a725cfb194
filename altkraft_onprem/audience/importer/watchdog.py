"""Noticing an import whose worker died: a heartbeat while it runs, a sweep for stale ones.

A running import stamps imports.heartbeat_at with every batch it writes and, between batches
(reading a large workbook, rebuilding indexes at the end), every HEARTBEAT_S seconds from a
small thread. A worker killed outright (SIGKILL, the OOM killer, a power cut) stamps nothing
more: the periodic sweep marks its import failed once the stamp is older than STALE_AFTER and
says how far it got. Imports are idempotent by email, so running the same file again
continues it (rows already imported come back "unchanged").
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import Engine, func, select, update

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow

from .models import imports

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
# Well above the longest quiet stretch of a live import (one batch, or an index rebuild, on
# a loaded machine), so a slow import is never declared dead.
STALE_AFTER = timedelta(minutes=10)


def stopped_message(rows_done: int) -> str:
    return (f"the worker stopped; {rows_done} rows were imported; "
            "re-run the file to continue (rows already imported are kept and reported unchanged)")


def beat(engine: Engine, import_id: int) -> None:
    with db.write(engine) as conn:
        conn.execute(update(imports).where(imports.c.id == import_id, imports.c.state == "running")
                     .values(heartbeat_at=utcnow()))


class Heartbeat:
    """Stamps the import every `interval` seconds while the `with` block runs."""

    def __init__(self, engine: Engine, import_id: int, interval: float = HEARTBEAT_S):
        self.engine, self.import_id, self.interval = engine, import_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"import-{import_id}-heartbeat",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                beat(self.engine, self.import_id)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the import goes on
                # Expected now and then on SQLite: the import itself holds the write lock
                # while it rebuilds indexes; the next beat (or batch) records it.
                log.warning("import %s: heartbeat not recorded (%s); next try in %.0f s",
                            self.import_id, type(exc).__name__, self.interval)


def fail_stale_imports(engine: Engine, *, older_than: timedelta = STALE_AFTER) -> list[int]:
    """Running imports whose last heartbeat is older than `older_than` become failed, with
    the rows done so far in the reason; returns their ids."""
    now = utcnow()
    cutoff = now - older_than
    last_sign = func.coalesce(imports.c.heartbeat_at, imports.c.started_at, imports.c.created_at)
    failed = []
    with db.write(engine) as conn:
        stale = conn.execute(select(imports.c.id, imports.c.rows_done).where(
            imports.c.state == "running", last_sign < cutoff)).all()
        for row in stale:
            # Only if it is still stale now (a beat may have landed since the select).
            done = conn.execute(update(imports).where(
                imports.c.id == row.id, imports.c.state == "running", last_sign < cutoff).values(
                state="failed", finished_at=now, error=stopped_message(row.rows_done))).rowcount
            if done:
                failed.append(row.id)
                log.warning("import %s: no heartbeat since before %s; marked failed", row.id, cutoff)
    return failed
