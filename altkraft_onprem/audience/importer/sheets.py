"""Spreadsheets: .xlsx (openpyxl, read-only, XML parsed through defusedxml) and .xls (xlrd).

Cells become the text a person sees: whole numbers without ".0" (phone numbers are often
stored as numbers), dates as ISO dates, booleans as true/false. Every non-empty sheet is a
table of its own.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

from altkraft_onprem.errors import ServiceError

from .archives import Limits, check_zip
from .text import HEADER_PEEK, Row, Table, looks_like_header


class SheetError(ServiceError):
    pass


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _table(name: str, rows: Iterator[Row], has_header: bool | None) -> Table | None:
    peek: list[Row] = []
    for row in rows:
        if any(c.strip() for c in row[1]):
            peek.append(row)
            if len(peek) >= HEADER_PEEK:
                break
    if not peek:
        return None
    first = peek[0][1]
    if has_header is None:
        has_header = looks_like_header(first, [cells for _, cells in peek[1:]])
    header = None
    if has_header:
        header = [c.strip() for c in first]
        peek = peek[1:]

    def chained() -> Iterator[Row]:
        yield from peek
        for line, cells in rows:
            if any(c.strip() for c in cells):
                yield line, cells
    return Table(name, header, chained())


def xlsx_tables(name: str, data: bytes, limits: Limits, has_header: bool | None = None) -> Iterator[Table]:
    from openpyxl import load_workbook
    from openpyxl.xml import DEFUSEDXML

    if not DEFUSEDXML:
        raise SheetError("reading .xlsx needs defusedxml (and OPENPYXL_DEFUSEDXML not set to False)")
    # An .xlsx is a zip: the same bomb checks as for uploaded archives.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip(archive, len(data), limits)
    except zipfile.BadZipFile:
        raise SheetError("%(name)s: not a readable .xlsx file", name=name) from None
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on broken files
        raise SheetError("%(name)s: not a readable .xlsx file (%(kind)s: %(exc)s)", name=name,
                         kind=type(exc).__name__, exc=exc) from None
    try:
        for sheet in book.worksheets:
            def rows(sheet=sheet) -> Iterator[Row]:
                for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                    yield number, [cell_text(v) for v in values]
            label = name if len(book.worksheets) == 1 else f"{name}:{sheet.title}"
            table = _table(label, rows(), has_header)
            if table is not None:
                yield table
    finally:
        book.close()


def xls_tables(name: str, data: bytes, has_header: bool | None = None) -> Iterator[Table]:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as exc:  # noqa: BLE001 - xlrd raises many kinds on broken files
        raise SheetError("%(name)s: not a readable .xls file (%(exc)s)", name=name, exc=exc) from None
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)

            def rows(sheet=sheet) -> Iterator[Row]:
                for r in range(sheet.nrows):
                    cells = []
                    for cell in sheet.row(r):
                        if cell.ctype == xlrd.XL_CELL_DATE:
                            try:
                                cells.append(cell_text(xlrd.xldate_as_datetime(cell.value, book.datemode)))
                            except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                                cells.append(cell_text(cell.value))
                        elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                            cells.append(cell_text(bool(cell.value)))
                        elif cell.ctype in (xlrd.XL_CELL_ERROR, xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                            cells.append("")
                        else:
                            cells.append(cell_text(cell.value))
                    yield r + 1, cells
            label = name if book.nsheets == 1 else f"{name}:{sheet.name}"
            table = _table(label, rows(), has_header)
            if table is not None:
                yield table
            book.unload_sheet(index)
    finally:
        book.release_resources()
