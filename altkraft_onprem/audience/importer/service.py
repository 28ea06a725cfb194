"""Imports: previews, creating an import, its state and report, and the uploads it reads.

With runner.py (which runs an import), the only code that writes the imports and
import_rejects tables.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Connection, insert, select

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record as audit
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience import lists as list_service
from altkraft_onprem.audience.models import STANDARD_FIELDS
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from . import mapping as mapping_rules
from .archives import Limits
from .models import COUNT_KEYS, MODES, STATUSES, import_rejects, imports
from .sources import open_tables
from .validate import CustomField

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
        raise ServiceError("mode must be one of %(modes)s", "mode", modes=', '.join(MODES))
    if status not in STATUSES:
        raise ServiceError("status must be one of %(statuses)s", "status", statuses=', '.join(STATUSES))


def _check_mapping(value) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str | None)
                                              for k, v in value.items()):
        raise ServiceError('mapping must be a JSON object {"column": "field"}', "mapping")
    for column, target in value.items():
        if target and target not in STANDARD_FIELDS and not target.startswith(mapping_rules.CUSTOM_PREFIX):
            raise ServiceError("column %(column)s: %(target)s is not a field (standard field names, "
                               "\"%(custom_prefix)sKEY\" for a custom field, \"\" to skip)",
                               "mapping", column=repr(column), target=repr(target), custom_prefix=mapping_rules.CUSTOM_PREFIX)
    return {k: v or "" for k, v in value.items()}


def _check_options(options: dict | None) -> dict:
    import codecs

    options = dict(options or {})
    if options.get("encoding"):
        try:
            text_codec = getattr(codecs.lookup(options["encoding"]), "_is_text_encoding", True)
        except LookupError:
            text_codec = False
        if not text_codec:
            raise ServiceError("unknown text encoding %(encoding)s", "encoding", encoding=repr(options['encoding']))
    return options


def create_import(conn: Connection, actor: Actor, *, filename: str, path: Path, list_ids,
                  mode: str = "upsert", status: str = "confirmed", mapping: dict | None = None,
                  options: dict | None = None) -> int:
    """A queued import of the file at `path`; custom fields the mapping names are created now."""
    _check(mode, status)
    mapping = _check_mapping(mapping)
    options = _check_options(options)
    list_ids = list_service.existing_list_ids(conn, list_ids) if list_ids else []
    ensure_custom_fields(conn, actor, mapping)
    import_id = conn.execute(insert(imports).values(
        state="queued", filename=filename[:300], path=str(path), list_ids=json.dumps(list_ids),
        mode=mode, status=status, mapping=json.dumps(mapping, ensure_ascii=False),
        options=json.dumps(options or {}), counts=json.dumps(dict.fromkeys(COUNT_KEYS, 0)),
        rows_done=0, created_by=actor.label, created_at=utcnow(), undoable=True).returning(imports.c.id)).scalar_one()
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
    item["undo_result"] = json.loads(item["undo_result"]) if item["undo_result"] else None
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


UPLOADS = "imports"
MARKER = ".altkraft-upload"      # only folders save_upload made are ever deleted


def discard_upload(path: Path) -> None:
    """Uploads (DATA_DIR/imports/<random>/) are deleted once read; a CLI file is left alone."""
    folder = path.parent
    if not (folder / MARKER).is_file():
        return
    for item in (path, folder / MARKER):
        item.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def save_upload(data_dir: Path, filename: str, stream) -> Path:
    """Stores an upload as DATA_DIR/imports/<random>/<safe name>; returns its path."""
    import secrets

    folder = data_dir / UPLOADS / secrets.token_hex(12)
    folder.mkdir(parents=True, mode=0o700)
    (folder / MARKER).touch()
    suffix = next((ext for ext in (".tar.gz", ".tgz", ".zip", ".xlsx", ".xls", ".csv", ".tsv", ".txt")
                   if filename.lower().endswith(ext)), "")
    target = folder / ("upload" + suffix)
    with open(target, "wb") as out:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
    return target


def purge_uploads(data_dir: Path, *, max_age_hours: float) -> int:
    """Deletes upload folders (those save_upload made) older than the age; returns how many."""
    import shutil
    import time

    root = data_dir / UPLOADS
    if not root.is_dir():
        return 0
    cutoff = time.time() - max_age_hours * 3600
    removed = 0
    for folder in root.iterdir():
        marker = folder / MARKER
        if marker.is_file() and marker.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
