"""The intake: every way in (SMTP receiver, IMAP, webhooks, replay) stores the raw message here
before it acknowledges; the pipeline job reads it from here. Stored means committed.

The receiver hands messages to a `GroupWriter`, which commits whatever arrived meanwhile in
one transaction (group commit), so many concurrent SMTP sessions cost one commit per group,
not per message, and each session still gets its 250 only after its message is committed.
"""
from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import zlib
from concurrent.futures import Future

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


class GroupWriter:
    """A thread that commits queued rows in groups; `submit` returns a Future of the row's id
    (or of the exception that kept it from being stored). `on_commit` runs after each group
    (the receiver wakes the pipeline job from it)."""

    def __init__(self, engine, on_commit=None, max_group: int = 500):
        self.engine, self.on_commit, self.max_group = engine, on_commit, max_group
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="inbound-intake", daemon=True)
        self._thread.start()

    def submit(self, item: dict) -> Future:
        future: Future = Future()
        self._queue.put((item, future))
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
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            self._write(group)

    def _write(self, group: list) -> None:
        for attempt in range(3):
            try:
                with db.write(self.engine) as conn:
                    ids = store_rows(conn, [item for item, _ in group])
                break
            except Exception as exc:  # noqa: BLE001 - the sessions answer 451; senders retry
                if attempt == 2:
                    log.exception("inbound: could not store %d message(s)", len(group))
                    for _, future in group:
                        future.set_exception(exc)
                    return
                time.sleep(0.05 * (attempt + 1))
        for (_, future), stored_id in zip(group, ids, strict=True):
            future.set_result(stored_id)
        if self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # noqa: BLE001 - stored is stored; the periodic sweep catches up
                log.exception("inbound: could not wake the pipeline")
