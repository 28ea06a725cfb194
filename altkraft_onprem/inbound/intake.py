"""The intake: every way in (SMTP receiver, IMAP, webhooks, replay) stores the raw message here
before it acknowledges; the pipeline job reads it from here. Stored means committed.

The receiver hands messages to a `GroupWriter`, which commits whatever arrived meanwhile in
one transaction and one statement (group commit), so many concurrent SMTP sessions cost one
commit per group, not per message, and each session still gets its 250 only after its message
is committed.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
import zlib

from sqlalchemy import Connection, insert, select

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow

from .models import SOURCES, inbound_messages

log = logging.getLogger(__name__)


def digest(rcpt: str, raw: bytes) -> str:
    return hashlib.sha256(rcpt.lower().encode() + b"\0" + raw).hexdigest()


def row(raw: bytes, *, source: str, rcpt: str, mail_from: str = "", peer: str = "") -> dict:
    if source not in SOURCES:
        raise ValueError(f"unknown intake source {source!r}")
    return {"received_at": utcnow(), "source": source, "peer": peer[:64],
            "mail_from": mail_from[:320], "rcpt": rcpt[:320], "size": len(raw),
            "digest": digest(rcpt, raw), "raw": zlib.compress(raw, 6), "state": "new",
            "subject": "", "detail": "{}"}


def store(conn: Connection, raw: bytes, *, source: str, rcpt: str, mail_from: str = "",
          peer: str = "") -> int:
    """Stores one message (in the caller's transaction); returns its id. The same message for
    the same recipient again (a retried delivery) returns the first one's id."""
    return store_rows(conn, [row(raw, source=source, rcpt=rcpt, mail_from=mail_from, peer=peer)])[0]


def store_rows(conn: Connection, rows: list[dict]) -> list[int]:
    digests = [r["digest"] for r in rows]
    known = dict(conn.execute(select(inbound_messages.c.digest, inbound_messages.c.id)
                              .where(inbound_messages.c.digest.in_(set(digests)))).all())
    ids = []
    for item in rows:
        if item["digest"] not in known:
            known[item["digest"]] = conn.execute(insert(inbound_messages).values(**item)
                                                 .returning(inbound_messages.c.id)).scalar_one()
        ids.append(known[item["digest"]])
    return ids


def raw_message(stored: bytes) -> bytes:
    return zlib.decompress(stored)


def store_many(conn: Connection, rows: list[dict]) -> None:
    """Stores rows in one statement (executemany); one already stored is left as it is. For
    the receiver, which needs no ids: no lookup first, no id back per row."""
    if rows:
        conn.execute(db.insert_ignoring_conflicts(conn, inbound_messages, ["digest"]), rows)


class GroupWriter:
    """A thread that commits queued messages in groups. `submit` (called in the event loop's
    thread) returns an asyncio future that is done once the rows are committed, or failed with
    the exception that kept them from being stored. One wake-up of the loop settles a whole
    group, not one per message. `on_commit` runs after each group (the receiver wakes the
    pipeline job from it)."""

    def __init__(self, engine, loop: asyncio.AbstractEventLoop, on_commit=None, max_group: int = 1000):
        self.engine, self.loop, self.on_commit, self.max_group = engine, loop, on_commit, max_group
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbound-intake", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict]) -> asyncio.Future:
        future = self.loop.create_future()
        self._queue.put((rows, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            size = len(first[0])
            while size < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
                size += len(item[0])
            self._write(group)

    def _write(self, group: list) -> None:
        failure = None
        for attempt in range(3):
            try:
                with db.write(self.engine) as conn:
                    store_many(conn, [row for rows, _ in group for row in rows])
                failure = None
                break
            except Exception as exc:  # noqa: BLE001 - the sessions answer 451; senders retry
                failure = exc
                if attempt < 2:
                    time.sleep(0.05 * (attempt + 1))
        if failure is not None:
            log.error("inbound: could not store %d message(s)", len(group), exc_info=failure)
        try:
            self.loop.call_soon_threadsafe(_settle, [future for _, future in group], failure)
        except RuntimeError:        # the loop is closed: nobody waits for an answer any more
            return
        if failure is None and self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # noqa: BLE001 - stored is stored; the periodic sweep catches up
                log.exception("inbound: could not wake the pipeline")


def _settle(futures: list[asyncio.Future], failure: BaseException | None) -> None:
    for future in futures:
        if future.done():           # the client went away meanwhile
            continue
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(failure)
