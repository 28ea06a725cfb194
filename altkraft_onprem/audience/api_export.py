"""REST routes: CSV/XLSX exports of a list or a saved segment (formula cells neutralised)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from flask import Response, g, send_file, stream_with_context
from pydantic import Field

from altkraft_onprem import db
from altkraft_onprem.access.service import record
from altkraft_onprem.api import operation

from . import export, lists, segments
from .api import TAG_LISTS, TAG_SEGMENTS, Strict

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ExportQuery(Strict):
    fields: str = Field("email,first_name,last_name", max_length=5000,
                        description="Comma-separated: standard fields, id, state, source, "
                                    "created_at, updated_at, list_status, custom.KEY")
    status: Literal["confirmed", "unconfirmed", "unsubscribed"] | None = Field(
        None, description="Only members with this status (lists only)")


def _export(kind: str, item_id: int, query: ExportQuery, fmt: str):
    chosen = [f.strip() for f in query.fields.split(",") if f.strip()]
    scope = {"list_id": item_id} if kind == "list" else {"segment_id": item_id}
    status = query.status if kind == "list" else None
    engine = db.get_engine()
    with db.write(engine) as conn:
        if kind == "list":
            lists.get_list(conn, item_id, counts=False)
        else:
            segments.get_segment(conn, item_id)
        next(export.rows(conn, chosen=chosen, **scope))          # refuses unknown fields now
        record(conn, g.actor, "subscriber.export", kind, item_id, fields=chosen, format=fmt)
    name = f"{kind}-{item_id}.{fmt}"
    if fmt == "xlsx":
        handle, name_on_disk = tempfile.mkstemp(suffix=".xlsx")
        os.close(handle)
        target = Path(name_on_disk)
        with db.read(engine) as conn:
            export.write_xlsx(export.rows(conn, chosen=chosen, status=status, **scope), target)
        response = send_file(target, mimetype=XLSX, as_attachment=True, download_name=name)
        response.call_on_close(lambda: target.unlink(missing_ok=True))
        return response

    def generate():
        with db.read(engine) as conn:
            yield from export.csv_chunks(export.rows(conn, chosen=chosen, status=status, **scope))
    return Response(stream_with_context(generate()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@operation("/lists/<int:list_id>/export.csv", "GET", permission="subscribers:export",
           summary="A list's members as CSV", tag=TAG_LISTS, query=ExportQuery,
           content_type="text/csv")
def export_list_csv(list_id: int, query: ExportQuery):
    return _export("list", list_id, query, "csv")


@operation("/lists/<int:list_id>/export.xlsx", "GET", permission="subscribers:export",
           summary="A list's members as XLSX", tag=TAG_LISTS, query=ExportQuery,
           content_type=XLSX)
def export_list_xlsx(list_id: int, query: ExportQuery):
    return _export("list", list_id, query, "xlsx")


@operation("/segments/<int:segment_id>/export.csv", "GET", permission="subscribers:export",
           summary="A segment's matches as CSV", tag=TAG_SEGMENTS, query=ExportQuery,
           content_type="text/csv")
def export_segment_csv(segment_id: int, query: ExportQuery):
    return _export("segment", segment_id, query, "csv")


@operation("/segments/<int:segment_id>/export.xlsx", "GET", permission="subscribers:export",
           summary="A segment's matches as XLSX", tag=TAG_SEGMENTS, query=ExportQuery,
           content_type=XLSX)
def export_segment_xlsx(segment_id: int, query: ExportQuery):
    return _export("segment", segment_id, query, "xlsx")
