"""The import's reading side: the stored profile the reader sends is exactly what the writer
would make of the validated values, and reading in a child process changes nothing."""
from __future__ import annotations

import io
import tarfile
import uuid
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altkraft_onprem import db
from altkraft_onprem.audience import fields
from altkraft_onprem.audience.importer import runner, service
from altkraft_onprem.audience.importer.reader import packed_cells, unpacked_cells
from altkraft_onprem.audience.importer.validate import CustomField, RowError, Validator
from altkraft_onprem.audience.importer.writer import PROFILE, Record, stored_profile

from .conftest import ACTOR
from .test_import_job import rejected

CUSTOM = {"points": CustomField("points", "number"), "since": CustomField("since", "date"),
          "vip": CustomField("vip", "boolean"), "plan": CustomField("plan", "choice", ("free", "pro")),
          "note": CustomField("note", "text")}
COLUMNS = ["email", *PROFILE, *(f"custom.{key}" for key in CUSTOM)]
CELL = st.one_of(
    st.sampled_from(["", " ", "1990-05-17", "31.02.1990", "17.05.1990", "female", "Male", "x", "RU", "Germany",
                     "ru", "pt_br", "Europe/Moscow", "Mars/Olympus", "+7 916 123-45-67", "0049301234",
                     "12", "1,5", "yes", "нет", "pro", "gold", "\ufffd", "a\x1fb"]),
    st.text(max_size=12))
EMAIL = st.sampled_from(["anna@example.com", " Ivan@Example.COM ", "no-at-sign", "", "user@пример.рф"])


def outcome(check, cells):
    try:
        return check(cells)
    except RowError as exc:
        return ("error", str(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EMAIL, st.lists(CELL, min_size=0, max_size=len(COLUMNS) - 1))
def test_stored_validation_equals_the_stored_form_of_the_values(email, cells):
    columns = list(enumerate(COLUMNS))
    plain = Validator(columns, CUSTOM).check
    stored = Validator(columns, CUSTOM, stored=True).check
    row = [email, *cells]
    expected = outcome(plain, row)
    if expected[0] != "error":
        email_out, values, custom = expected
        expected = (email_out, stored_profile(values, custom))
        # ... and the writer gets the values back from the stored form
        assert Record(email_out, None, None, expected[1]).profile() == (values, custom)
    assert outcome(stored, row) == expected


def test_a_record_decodes_its_stored_birth_date_and_custom_fields():
    values = {"first_name": "Anna", "birth_date": date(1990, 5, 17)}
    custom = {"points": 1.5, "vip": True, "since": "2020-01-02"}
    stored = stored_profile(values, custom)
    assert stored[PROFILE.index("birth_date")] == "1990-05-17"
    assert Record("a@example.com", None, None, stored).profile() == (values, custom)


@given(st.lists(st.text(max_size=8), min_size=1, max_size=6))
def test_packed_cells_come_back_unchanged(cells):
    assert unpacked_cells(packed_cells(cells)) == cells


def import_file(env, tmp_path, content: str, list_ids, *, reader_process: bool) -> dict:
    path = tmp_path / f"people-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(content, encoding="utf-8")
    with db.write(env.engine) as conn:
        import_id = service.create_import(conn, ACTOR, filename=path.name, path=path, list_ids=list_ids)
    return runner.run_import(env.engine, import_id, batch_size=7, reader_process=reader_process)


def test_a_child_process_reads_what_the_writer_would_read_itself(env, people, tmp_path):
    tag = uuid.uuid4().hex[:8]
    with db.write(env.engine) as conn:
        if "tier" not in fields.definitions(conn):
            fields.create_field(conn, ACTOR, "tier", "tier", "number")
    reports = []
    for reader_process in (False, True):
        run_tag = f"{tag}-{int(reader_process)}"
        list_id = people.list(f"reader-{run_tag}")
        people.add(f"old-{run_tag}@example.com", first_name="Old")
        lines = ["email,first_name,birth_date,tier"]
        lines += [f"p{n}-{run_tag}@example.com,Name{n},1990-01-{n % 28 + 1:02d},{n}" for n in range(40)]
        lines += [f"old-{run_tag}@example.com,New,,", f"p3-{run_tag}@example.com,Again,,", "broken,,,",
                  f"bad-{run_tag}@example.com,,31.02.1990,"]
        report = import_file(env, tmp_path, "\n".join(lines) + "\n", [list_id], reader_process=reader_process)
        assert report["state"] == "finished", report["error"]
        reasons = [(r["line"], r["reason"].replace(run_tag, "TAG")) for r in rejected(env, report["id"])]
        reports.append((report["counts"], report["rows_done"], reasons))
    assert reports[0] == reports[1]
    assert reports[1][0] == {"added": 40, "updated": 1, "unchanged": 0, "skipped": 0, "duplicates": 1,
                             "invalid": 2, "suppressed": 0}


def test_a_reading_failure_in_the_child_fails_the_import_with_the_reason(env, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b"email\nx@example.com\n"
        info = tarfile.TarInfo("../evil.csv")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    path = tmp_path / "evil.tar.gz"
    path.write_bytes(buffer.getvalue())
    with db.write(env.engine) as conn:
        import_id = service.create_import(conn, ACTOR, filename=path.name, path=path, list_ids=[])
    report = runner.run_import(env.engine, import_id, reader_process=True)
    assert report["state"] == "failed"
    assert "outside the archive" in report["error"]
