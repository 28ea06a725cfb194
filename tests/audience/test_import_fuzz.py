"""Fuzzing the CSV / clipboard parser: it never crashes and never loses a valid row."""
from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altkraft_onprem.audience.importer import text
from altkraft_onprem.audience.importer.mapping import auto_mapping, resolve

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\ufeff\x00"), max_size=40)
PLAIN = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"),
                              exclude_characters="\t;,|\"'\ufeff\x85"), max_size=20)
EMAILS = st.builds(lambda user, host: f"{user}@{host}.example.com",
                   st.from_regex(r"[a-z][a-z0-9._+-]{0,15}[a-z0-9]", fullmatch=True),
                   st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True))


def write(rows, delimiter, terminator="\r\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=terminator).writerows(rows)
    return buffer.getvalue()


@FUZZ
@given(st.text(max_size=500))
def test_any_pasted_text_parses_without_error(pasted):
    table = text.parse_paste(pasted)
    lines = [line for line, _ in table.rows]
    assert lines == sorted(lines)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_parse_without_error(data):
    table = text.open_text("fuzz.csv", io.BytesIO(data))
    for line, cells in table.rows:
        assert line >= 1 and all(isinstance(c, str) for c in cells)


@FUZZ
@given(rows=st.lists(st.lists(ANY_TEXT, min_size=1, max_size=5).filter(lambda r: any(r)),
                     min_size=1, max_size=15),
       delimiter=st.sampled_from(["\t", ";", ",", "|"]),
       terminator=st.sampled_from(["\r\n", "\n"]))
def test_rows_written_by_csv_come_back_unchanged(rows, delimiter, terminator):
    if terminator == "\n":
        # csv.writer does not quote a lone \r when the terminator is \n: its output is ambiguous.
        rows = [[cell.replace("\r", "") for cell in row] for row in rows]
        rows = [row for row in rows if any(row)]
    table = text.parse_paste(write(rows, delimiter, terminator), delimiter=delimiter, has_header=False)
    assert [cells for _, cells in table.rows] == rows


@FUZZ
@given(people=st.lists(st.tuples(EMAILS, PLAIN, PLAIN), min_size=1, max_size=30,
                       unique_by=lambda p: p[0]),
       delimiter=st.sampled_from(["\t", ";", ","]),
       email_column=st.integers(0, 2),
       header=st.booleans())
def test_every_valid_address_is_found_with_detection(people, delimiter, email_column, header):
    rows = []
    for email, first, last in people:
        cells = [first, last]
        cells.insert(email_column, email)
        rows.append(cells)
    if header:
        names = ["Имя", "Фамилия"]
        names.insert(email_column, "E-mail")
        rows.insert(0, names)
    table = text.parse_paste(write(rows, delimiter))
    got = list(table.rows)
    width = 3
    columns = resolve(auto_mapping(table.header, width, (), [c for _, c in got]), table.header, width)
    index = next(i for i, target in columns if target == "email")
    assert [cells[index] for _, cells in got] == [email for email, _, _ in people]


@FUZZ
@given(rows=st.lists(st.one_of(st.lists(PLAIN, min_size=1, max_size=4).filter(any), st.none()),
                     min_size=1, max_size=12),
       delimiter=st.sampled_from(["\t", ";", ","]), quoted=st.booleans())
def test_a_line_too_long_to_read_is_one_unreadable_row_among_the_others(rows, delimiter, quoted):
    """None stands for a row with a field longer than a row may be (plain or quoted): it comes
    out as an Unreadable row on its own line, and every other row as written."""
    limit = 300
    huge = "x" * (limit + 100)
    lines = [delimiter.join(row) if row else f"a@example.com{delimiter}" + (f'"{huge}"' if quoted else huge)
             for row in rows]
    original = text.MAX_FIELD
    text.MAX_FIELD = limit              # the module's limit, small so that examples stay small
    try:
        table = text.parse_paste("\r\n".join(lines) + "\r\n", delimiter=delimiter, has_header=False)
        got = list(table.rows)
    finally:
        text.MAX_FIELD = original
    assert [line for line, _ in got] == list(range(1, len(rows) + 1))
    for (_, cells), row in zip(got, rows, strict=True):
        if row is None:
            assert isinstance(cells, text.Unreadable) and "longer than" in cells.reason
        else:
            assert cells == row
