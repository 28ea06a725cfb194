"""The reading side of an import: tables -> validated, de-duplicated batches.

Reading and validating cost about as much CPU as writing does. A large import reads in a
forked child process and hands each batch to the writing parent through a pipe, so the two
halves run on two cores instead of sharing one interpreter lock; a small one reads in the
writer's own process (a fork costs more than it saves there). Both ways the writer sees the
same messages, in the same order:

    ("batch", records, places, rejects, rows_done, invalid, duplicates)   # cumulative counts
    ("done",) or ("failed", reason)                                       # the last one

records are writer.Record tuples with the profile in its stored form; places are (member, line, raw) per record, raw
being the row's cells (joined with US, the ASCII unit separator, when none holds one: one
string pickles for a fraction of a list) for the rare rejected-after-writing row.
"""
from __future__ import annotations

import csv
import gc
import io
import json
import logging
import os
import pickle
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from altkraft_onprem.errors import ServiceError
from altkraft_onprem.forking import die_with_parent

from . import mapping as mapping_rules
from .archives import Limits
from .sources import open_tables
from .text import Table, Unreadable
from .validate import CustomField, RowError, Validator

log = logging.getLogger(__name__)

UNIT = "\x1f"
MULTI_TABLE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".xls", ".xlsx")


def raw_line(cells: list[str]) -> str:
    """The row as a CSV line, as the rejected-rows report shows it."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().rstrip("\r\n")


def packed_cells(cells: list[str]) -> str | list[str]:
    joined = UNIT.join(cells)
    return joined if joined.count(UNIT) == len(cells) - 1 else cells


def unpacked_cells(raw: str | list[str]) -> list[str]:
    return raw if isinstance(raw, list) else raw.split(UNIT)


class Reader:
    """Reads one import's file and hands out batches of at most `batch_size` new records."""

    def __init__(self, job: dict, limits: Limits, custom: dict[str, CustomField], batch_size: int):
        self.job, self.limits, self.custom, self.batch_size = job, limits, custom, batch_size
        self.multi = job["filename"].lower().endswith(MULTI_TABLE_SUFFIXES)
        self.rows_done = self.invalid = self.duplicates = 0
        self.seen: dict[str, int | str] = {}
        self.records: list[tuple] = []
        self.places: list[tuple] = []
        self.rejects: list[dict] = []

    def messages(self) -> Iterator[tuple]:
        """Every batch, then "done" or "failed": never raises."""
        options = json.loads(self.job["options"] or "{}")
        mapping = json.loads(self.job["mapping"] or "{}")
        try:
            tables = open_tables(Path(self.job["path"]), self.job["filename"], self.limits,
                                 has_header=options.get("has_header"), encoding=options.get("encoding"),
                                 delimiter=options.get("delimiter"))
            for table in tables:
                yield from self._table(table, mapping)
        except ServiceError as exc:
            failure = ("failed", exc.message)
        except Exception as exc:  # noqa: BLE001 - the import ends failed, with the reason
            log.exception("import %s: reading failed", self.job["id"])
            failure = ("failed", f"internal error: {type(exc).__name__}: {exc}")
        else:
            failure = None
        # Whatever happened, what was read is written and the rejects are kept.
        yield self._batch()
        yield failure or ("done",)

    def _reject(self, line: int, member: str, reason: str, raw: str) -> None:
        self.rejects.append({"import_id": self.job["id"], "line": line, "member": member[:300],
                             "reason": reason, "raw": raw})

    def _batch(self) -> tuple:
        message = ("batch", self.records, self.places, self.rejects, self.rows_done, self.invalid,
                   self.duplicates)
        self.records, self.places, self.rejects = [], [], []
        return message

    def _table(self, table: Table, mapping: dict[str, str]) -> Iterator[tuple]:
        member = table.name if self.multi else ""
        for note in table.notes:
            self._reject(0, table.name, note, "")
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
            guessed = mapping_rules.auto_mapping(table.header, width, self.custom, [c for _, c in peek])
            columns = mapping_rules.resolve(guessed, table.header, width)
        try:
            validate = Validator(columns, self.custom, labels, stored=True).check
        except RowError as exc:
            self._reject(0, table.name, f"{exc}; this table was not imported", "")
            return
        seen, batch_size = self.seen, self.batch_size
        records, places = self.records, self.places
        for rows in (peek, table.rows):
            for line, cells in rows:
                self.rows_done += 1
                if isinstance(cells, Unreadable):
                    self.invalid += 1
                    self._reject(line, member, cells.reason, cells.start)
                    continue
                try:
                    email, stored = validate(cells)
                except RowError as exc:
                    self.invalid += 1
                    self._reject(line, member, str(exc), raw_line(cells))
                    continue
                first = seen.get(email)
                if first is not None:
                    self.duplicates += 1
                    where = f"line {first}" if isinstance(first, int) else first
                    self._reject(line, member, f"duplicate of {where}: {email}", raw_line(cells))
                    continue
                # In an archive the first occurrence may be in another member: name it.
                seen[email] = f"{member} line {line}" if member else line
                records.append((email, None, None, stored))
                places.append((member, line, packed_cells(cells)))
                if len(records) >= batch_size:
                    yield self._batch()
                    records, places = self.records, self.places


# --- the reader as a child process -----------------------------------------------------------

class ReaderProcess:
    """Runs a Reader in a forked child; iterate for its messages. Leaving the `with` block
    early (the writer failed) kills the child."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.pid: int | None = None
        self._pipe = None

    def __enter__(self) -> ReaderProcess:
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                                # the child: read, send, leave
            code = 0
            try:
                os.close(read_end)
                die_with_parent()
                signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
                gc.freeze()            # the inherited heap is never collected: no copy-on-write
                with os.fdopen(write_end, "wb", buffering=1 << 20) as out:
                    for message in self.reader.messages():
                        blob = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
                        out.write(len(blob).to_bytes(8, "big"))
                        out.write(blob)
            except BaseException:  # noqa: BLE001 - the parent reports a reader that stopped
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_end)
        self._pipe = os.fdopen(read_end, "rb", buffering=1 << 20)
        return self

    def __iter__(self) -> Iterator[tuple]:
        while True:
            head = self._pipe.read(8)
            if len(head) < 8:
                break
            size = int.from_bytes(head, "big")
            blob = self._pipe.read(size)
            if len(blob) < size:
                break
            message = pickle.loads(blob)
            yield message
            if message[0] != "batch":
                return
        # No last message: the child was killed (the OOM killer, an operator).
        yield ("failed", "internal error: the reading process stopped")

    def __exit__(self, *exc) -> None:
        self._pipe.close()
        try:
            os.kill(self.pid, signal.SIGKILL)     # gone already unless the writer gave up early
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
