"""REST routes: CSV/XLSX exports of a list or a saved segment (formula cells neutralised)."""
from __future__ import annotations

from typing import Literal

from flask import g
from pydantic import Field

from altkraft_onprem.api import operation

from .api import TAG_LISTS, TAG_SEGMENTS, Strict
from .downloads import XLSX, download
from .export import EXTRA
from .models import STANDARD_FIELDS


def _fields_pattern(*names: str) -> str:
    token = "(" + "|".join(names) + r"|custom\.[a-z][a-z0-9_]{0,62})"
    return f"^{token}(,{token}){{0,39}}$"


class ExportQuery(Strict):
    fields: str = Field("email,first_name,last_name", max_length=5000,
                        json_schema_extra={"pattern": _fields_pattern(*STANDARD_FIELDS, *EXTRA,
                                                                      "list_status")},
                        description="Comma-separated: standard fields, id, state, source, "
                                    "created_at, updated_at, list_status, custom.KEY")
    status: Literal["confirmed", "unconfirmed", "unsubscribed"] | None = Field(
        None, description="Only members with this status")


class SegmentExportQuery(Strict):
    fields: str = Field("email,first_name,last_name", max_length=5000,
                        json_schema_extra={"pattern": _fields_pattern(*STANDARD_FIELDS, *EXTRA)},
                        description="Comma-separated: standard fields, id, state, source, "
                                    "created_at, updated_at, custom.KEY")
    status: Literal["confirmed", "unconfirmed", "unsubscribed"] | None = Field(
        None, description="Ignored (a list's member status; a segment has none)")


def _export(kind: str, item_id: int, query: ExportQuery | SegmentExportQuery, fmt: str):
    chosen = [f.strip() for f in query.fields.split(",") if f.strip()]
    return download(g.actor, list_id=item_id if kind == "list" else None,
                    segment_id=item_id if kind == "segment" else None, chosen=chosen,
                    status=query.status if kind == "list" else None, fmt=fmt)


@operation("/lists/<int:list_id>/export.csv", "GET", lists=True, permission="subscribers:export",
           summary="A list's members as CSV", tag=TAG_LISTS, query=ExportQuery,
           content_type="text/csv")
def export_list_csv(list_id: int, query: ExportQuery):
    return _export("list", list_id, query, "csv")


@operation("/lists/<int:list_id>/export.xlsx", "GET", lists=True, permission="subscribers:export",
           summary="A list's members as XLSX", tag=TAG_LISTS, query=ExportQuery,
           content_type=XLSX)
def export_list_xlsx(list_id: int, query: ExportQuery):
    return _export("list", list_id, query, "xlsx")


@operation("/segments/<int:segment_id>/export.csv", "GET", lists=True, permission="subscribers:export",
           summary="A segment's matches as CSV", tag=TAG_SEGMENTS, query=SegmentExportQuery,
           content_type="text/csv")
def export_segment_csv(segment_id: int, query: SegmentExportQuery):
    return _export("segment", segment_id, query, "csv")


@operation("/segments/<int:segment_id>/export.xlsx", "GET", lists=True, permission="subscribers:export",
           summary="A segment's matches as XLSX", tag=TAG_SEGMENTS, query=SegmentExportQuery,
           content_type=XLSX)
def export_segment_xlsx(segment_id: int, query: SegmentExportQuery):
    return _export("segment", segment_id, query, "xlsx")
