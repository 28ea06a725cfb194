"""Export a list or a segment to CSV or XLSX with chosen fields. Every text cell that a
spreadsheet would read as a formula (starting with = + - @ tab, CR or NUL) is neutralised
with a leading apostrophe."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime

from sqlalchemy import Connection, and_, select

from altkraft_onprem.errors import NotFound, ServiceError

from . import fields as field_service
from . import segments as segment_service
from .models import STANDARD_FIELDS, subscriber_lists, subscribers

EXTRA = ("id", "state", "source", "created_at", "updated_at")
DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\x00")
BATCH = 2000


def neutralise(value):
    """A cell value safe to open in a spreadsheet (numbers and dates stay as they are)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(DANGEROUS):
        return "'" + text.replace("\x00", "")
    return text.replace("\x00", "")


def available_fields(conn: Connection) -> list[str]:
    return [*STANDARD_FIELDS, *EXTRA, "list_status",
            *(f"custom.{k}" for k in field_service.definitions(conn))]


def rows(conn: Connection, *, list_id: int | None = None, segment_id: int | None = None,
         chosen=None, status: str | None = None, only=None) -> Iterator[list]:
    """The header row, then one row per subscriber (not in the trash), in id order; `only`:
    people on one of these lists (a role limited to some lists)."""
    known = available_fields(conn)
    chosen = [f for f in (chosen or ["email", "first_name", "last_name"]) if f]
    unknown = [f for f in chosen if f not in known]
    if unknown:
        # A custom field that is not defined names nothing: 404, like an id that names no row.
        error = NotFound if all(f.startswith("custom.") for f in unknown) else ServiceError
        raise error("unknown field: %(unknown)s", "fields", unknown=', '.join(unknown))
    if "list_status" in chosen and list_id is None:
        raise ServiceError("list_status needs a list", "fields")
    where = [subscribers.c.deleted_at.is_(None)]
    columns = [subscribers]
    join = subscribers
    if list_id is not None:
        join = subscribers.join(subscriber_lists, and_(
            subscriber_lists.c.subscriber_id == subscribers.c.id,
            subscriber_lists.c.list_id == list_id))
        columns.append(subscriber_lists.c.status.label("list_status"))
        if status:
            where.append(subscriber_lists.c.status == status)
    if segment_id is not None:
        where.append(segment_service.segment_expr(conn, segment_id))
    if only is not None:
        where.append(segment_service.on_lists(only))
    yield chosen
    last = 0
    while True:
        batch = conn.execute(select(*columns).select_from(join).where(
            *where, subscribers.c.id > last).order_by(subscribers.c.id).limit(BATCH)).all()
        if not batch:
            return
        for row in batch:
            values = row._mapping
            out = []
            for name in chosen:
                if name.startswith("custom."):
                    out.append(neutralise((values["custom"] or {}).get(name[7:])))
                else:
                    out.append(neutralise(values[name]))
            yield out
        last = batch[-1].id


def csv_chunks(row_iter: Iterator[list]) -> Iterator[str]:
    """CSV text in chunks (UTF-8 BOM first so that Excel reads the encoding)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield "\ufeff"
    for count, row in enumerate(row_iter, 1):
        writer.writerow(row)
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_xlsx(row_iter: Iterator[list], path) -> None:
    """An .xlsx file (write-only mode: memory stays flat for big exports)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Subscribers")
    for row in row_iter:
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"          # never a formula, whatever the text
            cells.append(cell)
        sheet.append(cells)
    book.save(path)
