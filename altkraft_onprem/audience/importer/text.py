"""Delimited text (CSV, TXT, clipboard paste): encoding, delimiter and header detection, and a
streaming row reader that survives broken quoting.

Rows come out as `(line, cells)` where `line` is the physical line the record starts on.
A stray opening quote must not swallow the rest of the file: a record that grows past
MAX_RECORD_LINES lines or MAX_FIELD characters is re-read line by line without quoting, and
a line longer than MAX_FIELD comes out as an `Unreadable` row (rejected with the reason, the
rows around it read as usual).
"""
from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from .cyrillic import cyrillic_code_page
from .mapping import guess_field, looks_like_email

SAMPLE_BYTES = 64 * 1024
# What a person may choose when detection got it wrong (the import preview offers them).
ENCODING_CHOICES = ("utf-8", "cp1251", "koi8_r", "cp866", "utf-16", "cp1252", "latin_1")
DELIMITERS = ("\t", ";", ",", "|")          # ties go to the earlier one
MAX_RECORD_LINES = 200
MAX_FIELD = 1024 * 1024
HEADER_PEEK = 20

# Python's csv refuses fields over its limit with an error that ends the reader; we bound
# records ourselves (see _Lines) and let csv accept anything up to that.
csv.field_size_limit(MAX_FIELD * 4)

Row = tuple[int, list[str]]
# What the report keeps of a line too long to read.
UNREADABLE_START = 1000


class Unreadable(list):
    """A row with no cells standing for a record that could not be read: `reason` says why,
    `start` is its first characters (for the rejected-rows report)."""

    def __init__(self, reason: str, start: str):
        super().__init__()
        self.reason, self.start = reason, start


@dataclass
class Table:
    """One table of cells: a file, an archive member or a spreadsheet."""

    name: str
    header: list[str] | None
    rows: Iterator[Row]
    encoding: str = ""
    delimiter: str = ""
    notes: list[str] = field(default_factory=list)


# --- encoding --------------------------------------------------------------------------------

def detect_encoding(sample: bytes) -> str:
    """The encoding of a text file from its first bytes: BOM, UTF-16 without BOM, UTF-8, a
    Cyrillic code page when the bytes read as Cyrillic text (cyrillic.py), then
    charset-normalizer among the Western single-byte encodings spreadsheets write."""
    if sample.startswith(codecs.BOM_UTF32_LE) or sample.startswith(codecs.BOM_UTF32_BE):
        return "utf-32"
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(codecs.BOM_UTF16_LE) or sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    without_bom = _utf16_without_bom(sample)
    if without_bom is not None:
        return without_bom
    try:
        # Not final: a multi-byte character cut by the end of the sample is fine.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    code_page = cyrillic_code_page(sample)
    if code_page is not None:
        return code_page
    from charset_normalizer import from_bytes

    best = from_bytes(sample, cp_isolation=["cp1252", "latin_1"]).best()
    return best.encoding if best is not None else "latin-1"


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 without a BOM: the high byte of (nearly) every character is one of a few
    values below 0x09 (Latin, Cyrillic, Greek … text: 0x00 for ASCII, 0x04 for Cyrillic),
    which no single-byte text has in every other byte."""
    if len(sample) < 4:
        return None
    for name, high in (("utf-16-le", sample[1::2]), ("utf-16-be", sample[0::2])):
        common = Counter(high).most_common(2)
        if all(value < 0x09 for value, _ in common) and \
                sum(n for _, n in common) >= 0.95 * len(high):
            return name
    return None


class _Prefixed(io.RawIOBase):
    """The bytes already read for detection, then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def decode_stream(stream: BinaryIO, encoding: str | None = None) -> tuple[io.TextIOBase, str]:
    """A text stream over `stream` with the detected (or given) encoding. Undecodable bytes
    become U+FFFD, which validation rejects in the cells that carry them."""
    head = stream.read(SAMPLE_BYTES)
    encoding = encoding or detect_encoding(head)
    raw = io.BufferedReader(_Prefixed(head, stream), 1 << 16)
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline=""), encoding


# --- delimiter and header --------------------------------------------------------------------

def sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the sample's records into the most consistent number (> 1)
    of cells; a one-column sample gets ','."""
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]                        # probably cut by the sample size
    lines = lines[:200]
    best, best_score = ",", (0.0, 0)
    for rank, delimiter in enumerate(DELIMITERS):
        try:
            records = [r for r in csv.reader(lines, delimiter=delimiter)
                       if any(c.strip() for c in r)][:50]
        except csv.Error:
            continue
        if not records:
            continue
        counts = Counter(len(r) for r in records)
        modal, hits = counts.most_common(1)[0]
        if modal < 2:
            continue
        score = (round(hits / len(records), 2), -rank)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def looks_like_header(first: list[str], following: list[list[str]]) -> bool:
    """A header names fields we know, or carries no address where the data rows do."""
    if any(looks_like_email(c) for c in first):
        return False
    if any(guess_field(c) for c in first):
        return True
    return any(looks_like_email(c) for row in following for c in row)


# --- rows ------------------------------------------------------------------------------------

class _RecordTooLong(Exception):
    pass


class _Lines:
    """Physical lines for csv.reader, remembering those of the record being read."""

    def __init__(self, lines: Iterable[str]):
        self._lines = iter(lines)
        self.line = 0               # physical lines read so far
        self.pending: list[str] = []
        self._pending_chars = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if len(self.pending) >= MAX_RECORD_LINES or self._pending_chars > MAX_FIELD:
            raise _RecordTooLong
        text = next(self._lines)
        self.line += 1
        self.pending.append(text)
        self._pending_chars += len(text)
        if len(text) > MAX_FIELD:
            raise _RecordTooLong
        return text

    def take(self) -> list[str]:
        taken, self.pending, self._pending_chars = self.pending, [], 0
        return taken


def read_rows(lines: Iterable[str], delimiter: str) -> Iterator[Row]:
    """Every record as (first line number, cells); never raises on malformed quoting."""
    source = _Lines(lines)
    while True:
        reader = csv.reader(source, delimiter=delimiter)
        try:
            for cells in reader:
                raw = source.take()
                if cells:
                    yield source.line - len(raw) + 1, cells
            return
        except (_RecordTooLong, csv.Error):
            # Re-read what the broken record consumed one line at a time, quotes as text.
            raw = source.take()
            first = source.line - len(raw) + 1
            for offset, text in enumerate(raw):
                if len(text) > MAX_FIELD:
                    yield first + offset, Unreadable(
                        f"the line is {len(text):,} characters long, longer than the {MAX_FIELD:,} "
                        "a row may have; it was not read", text[:UNREADABLE_START] + "…")
                    continue
                cells = next(csv.reader([text], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
                if cells:
                    yield first + offset, [c.strip('"') for c in cells]


def text_table(name: str, text_stream: Iterable[str], *, sample: str, encoding: str = "",
               delimiter: str | None = None, has_header: bool | None = None) -> Table:
    """A Table over a text stream; `sample` is its beginning, used for sniffing."""
    delimiter = delimiter or sniff_delimiter(sample)
    rows = read_rows(text_stream, delimiter)
    peek: list[Row] = []
    for row in rows:
        peek.append(row)
        if len(peek) >= HEADER_PEEK:
            break
    header = None
    if peek:
        first = peek[0][1]
        if has_header is None:
            has_header = looks_like_header(first, [cells for _, cells in peek[1:]])
        if has_header:
            header = [c.strip() for c in first]
            peek = peek[1:]

    def chained() -> Iterator[Row]:
        yield from peek
        yield from rows
    return Table(name, header, chained(), encoding=encoding, delimiter=delimiter)


def open_text(name: str, stream: BinaryIO, *, encoding: str | None = None,
              delimiter: str | None = None, has_header: bool | None = None) -> Table:
    """A Table over a binary text file (CSV/TXT, any supported encoding)."""
    text, encoding = decode_stream(stream, encoding)
    # The sniffing sample is the decoded head, read through the same stream (not re-read).
    head = text.read(SAMPLE_BYTES // 2)
    lines = _chain_text(head, text)
    return text_table(name, lines, sample=head, encoding=encoding, delimiter=delimiter,
                      has_header=has_header)


def _chain_text(head: str, rest: io.TextIOBase) -> Iterator[str]:
    """Lines of head + rest, with a line split across the boundary joined again."""
    head_lines = head.splitlines(keepends=True)
    carry = ""
    if head_lines and (not head_lines[-1].endswith(("\n", "\r")) or head_lines[-1].endswith("\r")):
        carry = head_lines.pop()              # cut mid-line, or maybe the first half of \r\n
    yield from head_lines
    for line in rest:
        if carry:
            if carry.endswith("\r") and line != "\n" and not line.startswith("\n"):
                yield carry
            else:
                line = carry + line
            carry = ""
        yield line
    if carry:
        yield carry


def parse_paste(text: str, *, delimiter: str | None = None,
                has_header: bool | None = None) -> Table:
    """A Table over text pasted from a spreadsheet (tab, comma or semicolon separated)."""
    text = text.lstrip("\ufeff")
    return text_table("clipboard", io.StringIO(text, newline=""), sample=text[:SAMPLE_BYTES],
                      delimiter=delimiter, has_header=has_header)
