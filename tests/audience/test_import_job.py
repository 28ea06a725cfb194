"""The import job: counts, rejected rows, modes, lists, opt-in, trash, custom fields, limits."""
from __future__ import annotations

import csv
import io
import os
import uuid
import zipfile

import pytest
from sqlalchemy import select, text

from altkraft_onprem import db
from altkraft_onprem.audience import fields, suppression, trash
from altkraft_onprem.audience.importer import runner, service
from altkraft_onprem.audience.importer.archives import Limits
from altkraft_onprem.audience.models import subscriber_activity, subscriber_lists, subscribers

from .conftest import ACTOR


def uid() -> str:
    return uuid.uuid4().hex[:8]


def run(env, tmp_path, content: str | bytes, *, filename="people.csv", list_ids=(), mode="upsert",
        status="confirmed", mapping=None, limits=None) -> dict:
    path = tmp_path / filename
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    with db.write(env.engine) as conn:
        import_id = service.create_import(conn, ACTOR, filename=filename, path=path, list_ids=list_ids,
                                          mode=mode, status=status, mapping=mapping)
    return runner.run_import(env.engine, import_id, limits=limits)


def rejected(env, import_id) -> list[dict]:
    with db.read(env.engine) as conn:
        body = "".join(service.rejected_csv(conn, import_id))
    return list(csv.DictReader(io.StringIO(body)))


def person(env, email):
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers).where(subscribers.c.email == email)).first()


def membership(env, email, list_id):
    with db.read(env.engine) as conn:
        return conn.execute(select(subscriber_lists.c.status).join(
            subscribers, subscribers.c.id == subscriber_lists.c.subscriber_id).where(
            subscribers.c.email == email, subscriber_lists.c.list_id == list_id)).scalar()


def test_counts_and_rejected_rows_of_a_mixed_file(env, people, tmp_path):
    tag = uid()
    list_id = people.list(f"mixed-{tag}")
    people.add(f"old-{tag}@example.com", first_name="Old")
    people.add(f"same-{tag}@example.com", list_ids=[list_id], first_name="Same")
    with db.write(env.engine) as conn:
        suppression.suppress(conn, ACTOR, email=f"blocked-{tag}@example.com", reason="test", source="manual")
    content = (
        "E-mail;Имя;Телефон;Дата рождения\n"
        f"new-{tag}@example.com;Anna;+7 916 123-45-67;1990-05-17\n"     # 2 added
        f"old-{tag}@example.com;Oleg;;\n"                                # 3 updated
        f"same-{tag}@example.com;Same;;\n"                               # 4 unchanged
        f"new-{tag}@example.com;Anna again;;\n"                          # 5 duplicate of line 2
        "not-an-address;X;;\n"                                           # 6 invalid email
        f"bad-date-{tag}@example.com;Y;;31.02.1990\n"                    # 7 invalid date
        f"blocked-{tag}@example.com;Z;;\n"                               # 8 suppressed
    )
    report = run(env, tmp_path, content, list_ids=[list_id])
    assert report["state"] == "finished", report["error"]
    assert report["counts"] == {"added": 1, "updated": 1, "unchanged": 1, "skipped": 0,
                                "duplicates": 1, "invalid": 2, "suppressed": 1}
    assert report["rows_done"] == 7
    rows = rejected(env, report["id"])
    assert [(r["line"], r["reason"].split(":")[0]) for r in rows] == [
        ("5", "duplicate of line 2"), ("6", "email"), ("7", "birth_date"), ("8", "on the suppression list; not imported")]
    assert rows[0]["row"].startswith(f"new-{tag}@example.com")
    assert person(env, f"old-{tag}@example.com").first_name == "Oleg"
    assert person(env, f"new-{tag}@example.com").phone == "+79161234567"
    assert person(env, f"blocked-{tag}@example.com") is None


def test_mode_add_leaves_existing_fields_but_adds_the_membership(env, people, tmp_path):
    tag = uid()
    list_id = people.list(f"add-{tag}")
    people.add(f"p-{tag}@example.com", first_name="Kept")
    report = run(env, tmp_path, f"email,first_name\np-{tag}@example.com,Changed\nq-{tag}@example.com,New\n",
                 list_ids=[list_id], mode="add")
    assert report["counts"]["added"] == 1 and report["counts"]["updated"] == 1
    assert person(env, f"p-{tag}@example.com").first_name == "Kept"
    assert membership(env, f"p-{tag}@example.com", list_id) == "confirmed"


def test_mode_update_adds_no_one(env, people, tmp_path):
    tag = uid()
    people.add(f"p-{tag}@example.com", first_name="Before")
    report = run(env, tmp_path, f"email,first_name\np-{tag}@example.com,After\nq-{tag}@example.com,New\n",
                 mode="update")
    assert report["counts"]["updated"] == 1 and report["counts"]["skipped"] == 1
    assert person(env, f"p-{tag}@example.com").first_name == "After"
    assert person(env, f"q-{tag}@example.com") is None


def test_import_never_resubscribes_an_unsubscribed_member(env, people, tmp_path):
    tag = uid()
    list_id = people.list(f"unsub-{tag}")
    people.add(f"u-{tag}@example.com", list_ids=[list_id], status="unsubscribed")
    run(env, tmp_path, f"email\nu-{tag}@example.com\n", list_ids=[list_id])
    assert membership(env, f"u-{tag}@example.com", list_id) == "unsubscribed"


def test_confirmed_import_confirms_an_unconfirmed_member(env, people, tmp_path):
    tag = uid()
    list_id = people.list(f"conf-{tag}")
    people.add(f"c-{tag}@example.com", list_ids=[list_id], status="unconfirmed")
    report = run(env, tmp_path, f"email\nc-{tag}@example.com\n", list_ids=[list_id])
    assert report["counts"]["updated"] == 1
    assert membership(env, f"c-{tag}@example.com", list_id) == "confirmed"


def test_unconfirmed_import_on_double_optin_list_asks_for_confirmation(env, people, tmp_path):
    tag = uid()
    list_id = people.list(f"doi-{tag}", optin="double")
    run(env, tmp_path, f"email\nd-{tag}@example.com\n", list_ids=[list_id], status="unconfirmed")
    assert membership(env, f"d-{tag}@example.com", list_id) == "unconfirmed"
    with db.read(env.engine) as conn:
        kinds = set(conn.execute(select(subscriber_activity.c.kind).where(
            subscriber_activity.c.subscriber_id == person(env, f"d-{tag}@example.com").id)).scalars())
    # The audience's confirmation job ran (immediate queue): sent, or failed for want of a relay.
    assert kinds & {"confirmation_sent", "confirmation_failed"}, kinds
    assert "import" in kinds


def test_import_brings_a_person_back_from_the_trash(env, people, tmp_path):
    tag = uid()
    subscriber_id = people.add(f"t-{tag}@example.com")
    with db.write(env.engine) as conn:
        trash.delete_to_trash(conn, ACTOR, ids=[subscriber_id], description="test")
    report = run(env, tmp_path, f"email\nt-{tag}@example.com\n")
    assert report["counts"]["updated"] == 1
    assert person(env, f"t-{tag}@example.com").deleted_at is None


def test_mapping_to_a_new_custom_field_creates_it(env, tmp_path):
    tag = uid()
    key = f"color_{tag}"
    report = run(env, tmp_path, f"Почта,Любимый цвет,ignored\nc-{tag}@example.com,blue,x\n",
                 mapping={"Почта": "email", "Любимый цвет": f"custom.{key}", "ignored": ""})
    assert report["counts"]["added"] == 1
    assert person(env, f"c-{tag}@example.com").custom == {key: "blue"}
    with db.read(env.engine) as conn:
        assert key in fields.definitions(conn)


def test_headerless_file_maps_the_address_column(env, tmp_path):
    tag = uid()
    report = run(env, tmp_path, f"Anna\ta-{tag}@example.com\nBoris\tb-{tag}@example.com\n",
                 filename="pasted.txt")
    assert report["counts"]["added"] == 2


def test_zip_import_names_the_member_in_rejects(env, tmp_path):
    tag = uid()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", f"email\na-{tag}@example.com\nbroken\n")
        archive.writestr("b.csv", f"email\nb-{tag}@example.com\na-{tag}@example.com\n")
    report = run(env, tmp_path, buffer.getvalue(), filename="people.zip")
    assert report["counts"]["added"] == 2
    rows = rejected(env, report["id"])
    assert [(r["file"], r["line"]) for r in rows] == [("a.csv", "3"), ("b.csv", "3")]
    assert rows[1]["reason"] == f"duplicate of a.csv line 2: a-{tag}@example.com"


def test_hostile_archive_fails_the_import_with_the_reason(env, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.csv", "email\nx@example.com\n")
    report = run(env, tmp_path, buffer.getvalue(), filename="evil.zip")
    assert report["state"] == "failed"
    assert "outside the archive" in report["error"]


def test_file_without_an_address_column_is_reported(env, tmp_path):
    report = run(env, tmp_path, "name,city\nAnna,Moscow\n")
    assert report["state"] == "finished"
    assert "no column is mapped to email" in rejected(env, report["id"])[0]["reason"]


def test_running_an_import_twice_does_nothing_the_second_time(env, tmp_path):
    tag = uid()
    path = tmp_path / "once.csv"
    path.write_text(f"email\no-{tag}@example.com\n")
    with db.write(env.engine) as conn:
        import_id = service.create_import(conn, ACTOR, filename="once.csv", path=path, list_ids=[])
    first = runner.run_import(env.engine, import_id)
    second = runner.run_import(env.engine, import_id)
    assert first["counts"] == second["counts"] and first["counts"]["added"] == 1


def test_bulk_mode_rebuilds_custom_field_indexes(env, tmp_path, monkeypatch):
    tag = uid()
    key = f"bulk_{tag}"
    with db.write(env.engine) as conn:
        fields.create_field(conn, ACTOR, key, key, "number")
    monkeypatch.setattr(runner, "BULK_ROWS", 3)
    content = "email,n\n" + "".join(f"b{i}-{tag}@example.com,{i}\n" for i in range(10))
    report = run(env, tmp_path, content, mapping={"email": "email", "n": f"custom.{key}"})
    assert report["counts"]["added"] == 10
    query = ("SELECT indexname FROM pg_indexes" if env.engine.dialect.name == "postgresql"
             else "SELECT name FROM sqlite_master WHERE type = 'index'")
    with db.read(env.engine) as conn:
        names = set(conn.execute(text(query)).scalars())
    assert f"ix_subscribers_custom_{key}" in names


@pytest.mark.parametrize("limit", [Limits(max_total_bytes=100)])
def test_archive_limits_from_settings_apply(env, tmp_path, limit):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "email\n" + "x@example.com\n" * 20)
    report = run(env, tmp_path, buffer.getvalue(), filename="big.zip", limits=limit)
    assert report["state"] == "failed" and "unpacks to" in report["error"]


def test_stale_uploads_are_purged_and_fresh_ones_kept(tmp_path):
    old = service.save_upload(tmp_path, "old.csv", io.BytesIO(b"email\n"))
    fresh = service.save_upload(tmp_path, "fresh.csv", io.BytesIO(b"email\n"))
    os.utime(old.parent / service.MARKER, (0, 0))
    assert service.purge_uploads(tmp_path, max_age_hours=24) == 1
    assert not old.parent.exists() and fresh.exists()


def test_hourly_job_restores_custom_field_indexes_a_crash_left_dropped(env):
    from altkraft_onprem.audience.importer import jobs

    key = f"crash_{uid()}"
    with db.write(env.engine) as conn:
        fields.create_field(conn, ACTOR, key, key, "text")
        conn.execute(text(f"DROP INDEX ix_subscribers_custom_{key}"))
    jobs.purge_stale_uploads()          # immediate queue: runs here
    query = ("SELECT indexname FROM pg_indexes" if env.engine.dialect.name == "postgresql"
             else "SELECT name FROM sqlite_master WHERE type = 'index'")
    with db.read(env.engine) as conn:
        assert f"ix_subscribers_custom_{key}" in set(conn.execute(text(query)).scalars())


@pytest.mark.parametrize("quoted", [False, True], ids=["plain", "quoted"])
def test_one_oversized_field_rejects_its_row_and_imports_the_rest(env, tmp_path, quoted):
    """Issue 15 item 11: a 5 MB field ended the whole import ("internal error: field larger
    than field limit"); the rows after it were lost and rejected.csv was empty."""
    tag = uid()
    huge = "x" * (5 * 1024 * 1024)
    huge = f'"{huge}"' if quoted else huge
    content = (f"email;first_name\nbefore-{tag}@example.com;Anna\n"
               f"huge-{tag}@example.com;{huge}\n"
               + "".join(f"after{i}-{tag}@example.com;Oleg\n" for i in range(3)))
    report = run(env, tmp_path, content)
    assert report["state"] == "finished", report["error"]
    assert report["counts"]["added"] == 4 and report["counts"]["invalid"] == 1
    assert report["rows_done"] == 5
    (row,) = rejected(env, report["id"])
    assert row["line"] == "3" and "longer than" in row["reason"]
    assert row["row"].startswith(f"huge-{tag}@example.com;") and len(row["row"]) < 2000
    assert person(env, f"after2-{tag}@example.com").first_name == "Oleg"
    assert person(env, f"huge-{tag}@example.com") is None
