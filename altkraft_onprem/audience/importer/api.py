"""REST routes for imports: the JSON bulk upsert and file imports run as background jobs."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import g, request
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import MAX_ID, operation
from altkraft_onprem.audience import lists as list_service
from altkraft_onprem.audience.rules import STANDARD_FIELDS
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import NotFound, ServiceError

from . import jobs, records, runner, service, undo
from .text import ENCODING_CHOICES
from .views import rejected_response

TAG = "Imports"
PERMISSION = "subscribers:import"
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Mode = Literal["add", "update", "upsert"]
Status = Literal["confirmed", "unconfirmed"]


class SubscriberRecord(BaseModel):
    """One person; values are checked per record (a bad one is reported, not refused)."""

    model_config = ConfigDict(extra="allow")
    email: Any = Field(None, description="The address (the key: idempotent by email)")
    first_name: Any = None
    last_name: Any = None
    phone: Any = None
    gender: Any = Field(None, description="female, male or other")
    birth_date: Any = Field(None, description="YYYY-MM-DD")
    company: Any = None
    city: Any = None
    region: Any = None
    country: Any = Field(None, description="ISO 3166 alpha-2 code")
    language: Any = None
    timezone: Any = Field(None, description="IANA name, e.g. Europe/Moscow")
    fields: dict[str, Any] | None = Field(None, description="Custom field values by key")


class BulkImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lists: list[Id] = Field(default_factory=list, max_length=100)
    mode: Mode = "upsert"
    status: Status = "confirmed"
    subscribers: list[SubscriberRecord] = Field(max_length=records.MAX_RECORDS)


class RecordResult(BaseModel):
    email: str
    status: Literal["added", "updated", "unchanged", "invalid", "suppressed"]
    error: str | None


class BulkResult(BaseModel):
    results: list[RecordResult]


@operation("/subscribers/import", "POST", permission=PERMISSION, tag=TAG,
           summary="Add or update up to 10,000 subscribers (idempotent by email; a result per record)",
           body=BulkImport, response=BulkResult)
def bulk_import(body: BulkImport):
    with db.write(db.get_engine()) as conn:
        results, confirmations = records.import_records(
            conn, g.actor, [r.model_dump(exclude_unset=True) for r in body.subscribers],
            list_ids=body.lists, mode=body.mode, status=body.status)
    runner.queue_confirmations(confirmations)
    return {"results": results}


# What the document promises for `mapping`: a JSON object of columns to standard fields (the
# service also takes "custom.KEY" and says which value is wrong).
_FIELD = "(" + "|".join(("", *STANDARD_FIELDS)) + ")"
_MAPPING = (r'^\{("[A-Za-z0-9 _-]{1,40}": "' + _FIELD + '"(, "[A-Za-z0-9 _-]{1,40}": "' + _FIELD
            + r'")*)?\}$')


class ImportForm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: str = Field("", max_length=2000,
                      description="Target list id or name; several separated by commas")
    mode: Mode = "upsert"
    status: Status = "confirmed"
    mapping: str | None = Field(None, max_length=100_000, json_schema_extra={"pattern": _MAPPING},
                                description='JSON {"column header or 1-based position": "field"}; '
                                            'fields: email, first_name, …, "custom.KEY", "" to skip')
    has_header: bool | None = Field(None, description="Default: detected")
    encoding: str | None = Field(None, max_length=40, json_schema_extra={"enum": [*ENCODING_CHOICES]},
                                 description="Default: detected (any Python codec name is understood)")
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(None, description="Default: detected")


class Created(BaseModel):
    id: int


class Progress(BaseModel):
    rows_done: int
    rows_total: int | None
    rows_per_s: float
    errors: int
    elapsed_s: float


class ImportOut(BaseModel):
    id: int
    state: Literal["queued", "running", "finished", "failed"]
    filename: str
    list_ids: list[int]
    mode: Mode
    status: Status
    mapping: dict[str, str]
    counts: dict[str, int]
    progress: Progress
    error: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    undone_at: datetime | None = Field(description="When it was undone (POST …/undo); null: not undone")


def resolve_lists(conn, text: str) -> list[int]:
    ids = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.isdigit():
            if int(part) > MAX_ID:
                raise NotFound("no such list: %(part)s", "list", part=part)
            ids.append(int(part))
        else:
            try:
                ids.append(list_service.list_id_by_name(conn, part))
            except NotFound as exc:        # a 404 naming the form field
                raise NotFound.like(exc, "list") from None
    return ids


def parse_mapping(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ServiceError("mapping is not valid JSON: %(exc)s", "mapping", exc=exc) from None


@operation("/imports", "POST", permission=PERMISSION, tag=TAG, status=202,
           summary="Import a file (.csv, .txt, .xls, .xlsx, .zip, .tar.gz) as a background job",
           multipart=ImportForm, response=Created)
def create_import(form: ImportForm):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ServiceError("send the file as the multipart field `file`", "file")
    mapping = parse_mapping(form.mapping)
    options = {k: v for k, v in (("has_header", form.has_header), ("encoding", form.encoding),
                                 ("delimiter", form.delimiter)) if v is not None}
    path = service.save_upload(current_settings().data_dir, upload.filename, upload.stream)
    try:
        with db.write(db.get_engine()) as conn:
            import_id = service.create_import(
                conn, g.actor, filename=upload.filename, path=path, list_ids=resolve_lists(conn, form.list),
                mode=form.mode, status=form.status, mapping=mapping, options=options)
    except Exception:
        service.discard_upload(path)
        raise
    jobs.run_import(import_id)
    return {"id": import_id}


@operation("/imports", "GET", permission=PERMISSION, tag=TAG, summary="Recent imports",
           response=list[ImportOut])
def list_imports():
    with db.read(db.get_engine()) as conn:
        return service.recent_imports(conn, 50)


@operation("/imports/<int:import_id>", "GET", permission=PERMISSION, tag=TAG,
           summary="An import's state, progress and counts", response=ImportOut)
def get_import(import_id: int):
    with db.read(db.get_engine()) as conn:
        return service.get_import(conn, import_id)


@operation("/imports/<int:import_id>/rejected.csv", "GET", permission=PERMISSION, tag=TAG,
           summary="Every rejected row with its line number and reason (CSV)",
           content_type="text/csv")
def rejected_csv(import_id: int):
    return rejected_response(import_id)


class UndoQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(False, description="1: only count what the undo would do")


class UndoResult(BaseModel):
    trashed: int = Field(description="People the import added, now in the trash (one batch)")
    memberships_removed: int = Field(description="Memberships it added to people who existed")
    fields_restored: int = Field(description="Field values set back to what they were before it")
    kept_edits: int = Field(description="People edited since the import: those edits are kept")


@operation("/imports/<int:import_id>/undo", "POST", permission=PERMISSION, tag=TAG, lists=True,
           summary="Undo a file import within the trash period (dry_run=1: only count)",
           query=UndoQuery, response=UndoResult,
           responses={409: "undone already, still running, older than the trash period, or from "
                           "before imports recorded their changes"})
def undo_import(import_id: int, query: UndoQuery):
    engine = db.get_engine()
    days = current_settings()["audience.trash_days"]
    with (db.read(engine) if query.dry_run else db.write(engine)) as conn:
        return undo.undo_import(conn, g.actor, import_id, trash_days=days, dry_run=query.dry_run)
