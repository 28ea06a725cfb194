"""What an uploaded file is, and the tables in it: text, spreadsheet, or an archive of those."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from altkraft_onprem.errors import ServiceError

from . import archives, sheets, text
from .archives import Limits
from .text import Table

MAX_SHEET_BYTES = 200 * 1024 * 1024   # a spreadsheet is parsed in memory


def kind_of(filename: str, head: bytes) -> str:
    """'text', 'xls', 'xlsx', 'zip' or 'tar', from the name and, failing that, the magic."""
    name = filename.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    for ext, kind in ((".zip", "zip"), (".xlsx", "xlsx"), (".xls", "xls")):
        if name.endswith(ext):
            return kind
    if head.startswith(b"PK\x03\x04"):
        return "xlsx" if b"[Content_Types].xml" in head[:2048] or b"xl/" in head[:2048] else "zip"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if head.startswith(b"\x1f\x8b") or head[257:262] == b"ustar":
        return "tar"
    return "text"


def _skipped(name: str, why: str) -> Table:
    return Table(name, None, iter(()), notes=[why])


def _read_limited(stream: BinaryIO, name: str) -> bytes:
    data = stream.read(MAX_SHEET_BYTES + 1)
    if len(data) > MAX_SHEET_BYTES:
        raise ServiceError("%(name)s: spreadsheets over %(max_sheet_bytes)s MB are not read; save it "
                           "as CSV", name=name, max_sheet_bytes=MAX_SHEET_BYTES // 2**20)
    return data


def member_tables(name: str, stream: BinaryIO, kind: str, limits: Limits, *,
                  has_header: bool | None, encoding: str | None,
                  delimiter: str | None) -> Iterator[Table]:
    if kind == "xlsx":
        yield from sheets.xlsx_tables(name, _read_limited(stream, name), limits, has_header)
    elif kind == "xls":
        yield from sheets.xls_tables(name, _read_limited(stream, name), has_header)
    else:
        yield text.open_text(name, stream, encoding=encoding, delimiter=delimiter,
                             has_header=has_header)


def open_tables(path: Path, filename: str, limits: Limits, *, has_header: bool | None = None,
                encoding: str | None = None, delimiter: str | None = None) -> Iterator[Table]:
    """Every table in the file at `path` (uploaded as `filename`). Archive members that are
    not tables come out as empty tables with a note saying why they were skipped."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    kind = kind_of(filename, head)
    options = {"has_header": has_header, "encoding": encoding, "delimiter": delimiter}
    size = path.stat().st_size
    if kind == "zip":
        with open(path, "rb") as handle:
            for name, stream in archives.zip_members(handle, size, limits):
                if stream is None:
                    yield _skipped(name, "not a CSV, TXT, XLS or XLSX file; skipped")
                    continue
                yield from member_tables(name, stream, kind_of(name, b""), limits, **options)
    elif kind == "tar":
        for name, stream in archives.tar_members(lambda: open(path, "rb"), size, limits):
            if stream is None:
                yield _skipped(name, "not a CSV, TXT, XLS or XLSX file; skipped")
                continue
            yield from member_tables(name, stream, kind_of(name, b""), limits, **options)
    else:
        with open(path, "rb") as handle:
            yield from member_tables(filename, handle, kind, limits, **options)
