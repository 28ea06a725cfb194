"""The senders' reply journal: a message's reply is safe once appended to a file.

A sender must not end a message (send its final dot) before the previous message's reply is
safe, so that a crash leaves at most one message per session whose fate is unknown (in
doubt). Each sender process appends every reply to a journal file of its own before it goes
on; a `write()` that returned survives the process being killed (the data is in the kernel's
page cache), which is the same promise the ledger's commits make (SQLite WAL with
synchronous=NORMAL, Postgres with synchronous_commit=off: only a crash of the host may lose
the last moments). The committing parent then writes the records to the ledger in groups at
its own pace: no sender waits for a commit per message, no process is woken per message.

After a crash, `replay` applies the journals of dead senders on this host to the ledger; it
must run before `ledger.recover` looks for a dead sender's first unrecorded row.

A file holds a header line {"owner": lease holder} and one JSON array per record:
[row id, state, reply, message id, retry at (ISO 8601) or null, counted, unix time]. A sender
truncates its file back to the header whenever the parent has committed everything in it
(before each claim), so a row never has two records in one file, and removes it when it
stops cleanly.
"""
from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from altkraft_onprem import db

from . import ledger, recording

log = logging.getLogger("altkraft.delivery")

# A file without a complete header holds no records (the header is its first write); one
# this old is not being written any more.
ABANDONED_SECONDS = 60.0


def directory(settings) -> Path:
    return settings.data_dir / "journal"


class Journal:
    """One sender process's journal file."""

    def __init__(self, folder: Path, owner: str):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _, pid, tag = owner.rsplit(":", 2)
        self.path = folder / f"{pid}-{tag.replace('.', '-')}.jsonl"
        self.header = json.dumps({"owner": owner}).encode("utf-8") + b"\n"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.empty = True
        _write(self.fd, self.header)

    def append(self, row_id: int, state: str, values: dict) -> None:
        """Returns once the record would survive this process being killed."""
        retry_at = values.get("retry_at")
        line = json.dumps([row_id, state, values.get("reply"), values.get("message_id"),
                           retry_at.isoformat() if retry_at is not None else None,
                           values.get("counted", True), time.time()], ensure_ascii=False)
        _write(self.fd, line.encode("utf-8") + b"\n")
        self.empty = False

    def reset(self) -> None:
        """Everything recorded so far is committed: start over (after the header)."""
        if not self.empty:
            os.ftruncate(self.fd, len(self.header))
            self.empty = True

    def remove(self) -> None:
        """A clean stop, everything committed: the file goes."""
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replay(engine, folder: Path) -> int:
    """Applies the records of dead senders' journals on this host, then deletes the files
    (after the commit); journals of living senders are left to them. Returns the number of
    rows recorded. A torn last line (the sender was killed inside the write) is skipped: its
    row stays leased and `ledger.recover` finds it."""
    paths = sorted(folder.glob("*.jsonl"))
    if not paths:               # the usual case: no write transaction just to find that out
        return 0
    done: list[Path] = []
    applied = 0
    with db.write(engine) as conn:
        for path in paths:
            owner, records = _read(path)
            if owner is None:
                if _older_than(path, ABANDONED_SECONDS):
                    done.append(path)
                continue
            if not ledger.owner_dead(owner):
                continue
            for row_id, state, reply, message_id, retry_at, counted, at in records:
                applied += recording.record(
                    conn, row_id, owner, state, reply=reply, message_id=message_id,
                    retry_at=datetime.fromisoformat(retry_at) if retry_at else None,
                    counted=counted, now=datetime.fromtimestamp(at, UTC))
            done.append(path)
    for path in done:
        path.unlink(missing_ok=True)
    if applied:
        log.info("replayed %s ledger records from the journals of stopped senders", applied)
    return applied


def _read(path: Path) -> tuple[str | None, list]:
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:                     # deleted meanwhile by another replay
        return None, []
    try:
        owner = json.loads(lines[0])["owner"]
    except (ValueError, KeyError, TypeError):
        return None, []
    records = []
    # The last element is what follows the final newline: empty, or a torn record.
    for number, line in enumerate(lines[1:-1], start=2):
        try:
            record = json.loads(line)
            row_id, state, reply, message_id, retry_at, counted, at = record
            if not isinstance(row_id, int) or state not in _STATES:
                raise ValueError("not a ledger record")
        except ValueError as exc:
            log.warning("journal %s line %s skipped: %s", path, number, exc)
            continue
        records.append(record)
    return owner, records


_STATES = {"sent", "failed", "skipped", "queued", "in_doubt"}


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False
