"""Import runs: create, read, report, and run (the body of the background job).

The only code that writes the imports and import_rejects tables. Subscribers are written by
the batch writer (writer.py) inside the transactions opened here, one per batch, so progress
is visible while the import runs and a crash keeps the batches already done.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from altkraft_onprem import db
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record as audit
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience import lists as list_service
from altkraft_onprem.audience.models import custom_index_name, subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from . import mapping as mapping_rules
from .archives import Limits
from .models import COUNT_KEYS, MODES, STATUSES, import_rejects, imports
from .sources import open_tables
from .text import Table
from .validate import CustomField, RowError, Validator
from .writer import BatchWriter, Record, WriteOptions

log = logging.getLogger(__name__)
BATCH = 5000
PREVIEW_ROWS = 10
Progress = Callable[[dict], None]


# --- reading what is there -------------------------------------------------------------------

def custom_definitions(conn: Connection) -> dict[str, CustomField]:
    return {key: CustomField(key, d["type"], tuple(d.get("choices") or ()))
            for key, d in field_service.definitions(conn).items()}


def preview(path: Path, filename: str, limits: Limits, *, custom_keys=(), has_header=None,
            encoding=None, delimiter=None) -> list[dict]:
    """The first rows of every table in a file and the mapping guessed for each."""
    result = []
    for table in open_tables(path, filename, limits, has_header=has_header, encoding=encoding,
                             delimiter=delimiter):
        rows = []
        for _line, cells in table.rows:
            rows.append(cells)
            if len(rows) >= PREVIEW_ROWS:
                break
        width = max([len(table.header or [])] + [len(r) for r in rows] + [0])
        result.append({
            "name": table.name, "header": table.header, "rows": rows, "width": width,
            "columns": mapping_rules.column_names(table.header, width),
            "mapping": mapping_rules.auto_mapping(table.header, width, custom_keys, rows),
            "encoding": table.encoding, "delimiter": table.delimiter, "notes": table.notes,
        })
        if len(result) >= 20:
            break
    return result


# --- the imports table -----------------------------------------------------------------------

def _check(mode: str, status: str) -> None:
    if mode not in MODES:
        raise ServiceError(f"mode must be one of {', '.join(MODES)}", "mode")
    if status not in STATUSES:
        raise ServiceError(f"status must be one of {', '.join(STATUSES)}", "status")


def _check_mapping(value) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str | None)
                                              for k, v in value.items()):
        raise ServiceError('mapping must be a JSON object {"column": "field"}', "mapping")
    return {k: v or "" for k, v in value.items()}


def create_import(conn: Connection, actor: Actor, *, filename: str, path: Path, list_ids,
                  mode: str = "upsert", status: str = "confirmed", mapping: dict | None = None,
                  options: dict | None = None) -> int:
    """A queued import of the file at `path`; custom fields the mapping names are created now."""
    _check(mode, status)
    mapping = _check_mapping(mapping)
    list_ids = list_service.existing_list_ids(conn, list_ids) if list_ids else []
    ensure_custom_fields(conn, actor, mapping)
    import_id = conn.execute(insert(imports).values(
        state="queued", filename=filename[:300], path=str(path), list_ids=json.dumps(list_ids),
        mode=mode, status=status, mapping=json.dumps(mapping, ensure_ascii=False),
        options=json.dumps(options or {}), counts=json.dumps(dict.fromkeys(COUNT_KEYS, 0)),
        rows_done=0, created_by=actor.label, created_at=utcnow()).returning(imports.c.id)).scalar_one()
    audit(conn, actor, "import.create", "import", import_id, filename=filename, lists=list_ids,
          mode=mode, status=status)
    return import_id


def ensure_custom_fields(conn: Connection, actor: Actor, mapping: dict[str, str]) -> None:
    """Columns mapped to custom fields that do not exist yet get a text field on the spot."""
    for target in mapping_rules.targets(mapping):
        if target.startswith(mapping_rules.CUSTOM_PREFIX):
            field_service.ensure_field(conn, actor, target[len(mapping_rules.CUSTOM_PREFIX):])


def _out(row) -> dict:
    item = dict(row._mapping)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts.update(json.loads(item["counts"] or "{}"))
    item["counts"] = counts
    item["list_ids"] = json.loads(item["list_ids"] or "[]")
    item["mapping"] = json.loads(item["mapping"] or "{}")
    item["options"] = json.loads(item["options"] or "{}")
    started, finished = item["started_at"], item["finished_at"]
    elapsed = ((finished or utcnow()) - started).total_seconds() if started else 0.0
    item["progress"] = {
        "rows_done": item["rows_done"], "rows_total": item["rows_total"],
        "rows_per_s": round(item["rows_done"] / elapsed, 1) if elapsed > 0 else 0.0,
        "errors": counts["invalid"] + counts["duplicates"] + counts["suppressed"],
        "elapsed_s": round(elapsed, 1),
    }
    item.pop("path", None)
    return item


def get_import(conn: Connection, import_id: int) -> dict:
    row = conn.execute(select(imports).where(imports.c.id == import_id)).first()
    if row is None:
        raise NotFound("no such import")
    return _out(row)


def recent_imports(conn: Connection, limit: int = 20) -> list[dict]:
    return [_out(r) for r in conn.execute(select(imports).order_by(imports.c.id.desc()).limit(limit))]


def rejected_csv(conn: Connection, import_id: int) -> Iterator[str]:
    """The rejected rows as CSV text chunks: line, member, reason, and the row as read."""
    get_import(conn, import_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "file", "reason", "row"])
    query = (select(import_rejects.c.line, import_rejects.c.member, import_rejects.c.reason,
                    import_rejects.c.raw)
             .where(import_rejects.c.import_id == import_id).order_by(import_rejects.c.id))
    for n, row in enumerate(conn.execute(query), start=1):
        writer.writerow([row.line, row.member, _neutralise(row.reason), _neutralise(row.raw)])
        if n % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _neutralise(cell: str) -> str:
    """Spreadsheets run cells that start like formulas; the report is opened in them."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r", "\x00") else cell


# --- running ---------------------------------------------------------------------------------

def _claim(engine: Engine, import_id: int) -> dict | None:
    with db.write(engine) as conn:
        claimed = conn.execute(update(imports).where(imports.c.id == import_id, imports.c.state == "queued")
                               .values(state="running", started_at=utcnow())).rowcount
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
        self.seen: dict[str, int] = {}
        self.rejects: list[dict] = []
        self.batch: list[Record] = []
        self.lines: list[tuple[str, int, list[str]]] = []
        self.started = time.monotonic()
        self.writer = BatchWriter(WriteOptions(
            list_ids=json.loads(job["list_ids"]), mode=job["mode"], status=job["status"],
            source=f"import:{self.id}", activity={"import": self.id}))
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
            validate = Validator(columns, custom, labels)
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
                    self.reject(line, member, f"duplicate of line {first}: {email}", _raw_line(cells))
                    continue
                seen[email] = line
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
                rows_done=rows_done, counts=json.dumps(self.counts)))
        self.send_confirmations()
        if self.progress is not None:
            self.progress({"rows_done": rows_done, "counts": dict(self.counts),
                           "rows_per_s": rows_done / max(time.monotonic() - self.started, 1e-6)})

    def send_confirmations(self) -> None:
        """Unconfirmed people on double opt-in lists get the confirmation email (queued)."""
        pending, self.writer.confirmations = self.writer.confirmations, []
        if not pending:
            return
        try:
            from altkraft_onprem.audience import optin
        except ImportError:
            return
        request = getattr(optin, "request_confirmations", None)
        if request is not None:
            request(self.engine, pending)


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
    limits = limits or Limits()
    path = Path(job["path"])
    options = json.loads(job["options"] or "{}")
    try:
        with db.read(engine) as conn:
            custom = custom_definitions(conn)
        total = estimate_rows(path, job["filename"])
        if total is not None:
            with db.write(engine) as conn:
                conn.execute(update(imports).where(imports.c.id == import_id).values(rows_total=total))
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
        _finish(engine, import_id, "failed", exc.message)
    except Exception as exc:  # noqa: BLE001 - the import ends failed, with the reason, not stuck
        log.exception("import %s failed", import_id)
        _finish(engine, import_id, "failed", f"internal error: {type(exc).__name__}: {exc}")
    else:
        with db.write(engine) as conn:
            conn.execute(update(imports).where(imports.c.id == import_id).values(
                state="finished", finished_at=utcnow(), rows_total=run.rows_done))
    finally:
        _discard_upload(path)
        restore_custom_indexes(engine)
    with db.read(engine) as conn:
        return get_import(conn, import_id)


UPLOADS = "imports"


def _discard_upload(path: Path) -> None:
    """Uploads kept under DATA_DIR/imports are deleted once read; a CLI file is left alone."""
    if path.parent.parent.name == UPLOADS:
        try:
            path.unlink()
            path.parent.rmdir()
        except OSError:
            pass


def save_upload(data_dir: Path, filename: str, stream) -> Path:
    """Stores an upload as DATA_DIR/imports/<random>/<safe name>; returns its path."""
    import secrets

    folder = data_dir / UPLOADS / secrets.token_hex(12)
    folder.mkdir(parents=True, mode=0o700)
    suffix = next((ext for ext in (".tar.gz", ".tgz", ".zip", ".xlsx", ".xls", ".csv", ".tsv", ".txt")
                   if filename.lower().endswith(ext)), "")
    target = folder / ("upload" + suffix)
    with open(target, "wb") as out:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
    return target
