"""/api/v1/audit filters, and the UI's CSV export of the same log."""
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor


@pytest.fixture(scope="module")
def marker(env) -> str:
    """Three entries by one actor with a unique label, plus one by another actor."""
    label = f"auditor-{uuid.uuid4().hex[:6]}@example.com"
    with db.write(env.engine) as conn:
        actor = system_actor(label)
        for action in ("widget.create", "widget.update", "gadget.create"):
            access.record(conn, actor, action, "widget", 1)
        access.record(conn, system_actor("someone-else"), "widget.create", "widget", 2)
    return label


def test_filter_by_actor(api, marker):
    entries = api("GET", f"/audit?actor={marker}").get_json()
    assert len(entries) == 3 and {e["actor"] for e in entries} == {marker}


def test_filter_by_action_prefix(api, marker):
    entries = api("GET", f"/audit?actor={marker}&action=widget.").get_json()
    assert sorted(e["action"] for e in entries) == ["widget.create", "widget.update"]


def test_newest_first_with_limit_and_offset(api, marker):
    everything = api("GET", f"/audit?actor={marker}").get_json()
    page = api("GET", f"/audit?actor={marker}&limit=1&offset=1").get_json()
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert page == everything[1:2]


def test_filter_by_time_window(api, marker):
    now = datetime.now(UTC)
    inside = api("GET", "/audit", query_string={"actor": marker, "since": (now - timedelta(hours=1)).isoformat(),
                                                 "until": (now + timedelta(hours=1)).isoformat()}).get_json()
    future = api("GET", "/audit", query_string={"actor": marker,
                                                 "since": (now + timedelta(hours=1)).isoformat()}).get_json()
    assert len(inside) == 3 and future == []


def test_naive_times_are_taken_as_utc(api, marker):
    since = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert len(api("GET", "/audit", query_string={"actor": marker, "since": since}).get_json()) == 3


def test_bad_filter_is_422_naming_it(api):
    response = api("GET", "/audit?limit=0&since=yesterday")
    assert response.status_code == 422
    assert {e["field"] for e in response.get_json()["errors"]} == {"limit", "since"}


def test_unknown_filter_is_422(api):
    assert api("GET", "/audit?colour=red").status_code == 422


def test_audit_needs_audit_read(env, api):
    assert api("GET", "/audit", token=env.token("Editor")).status_code == 403


def test_csv_export_has_header_and_filtered_rows(env, marker):
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    response = client.get(f"/audit.csv?actor={marker}&action=widget.")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(r["action"] for r in rows) == ["widget.create", "widget.update"]
    assert {r["actor"] for r in rows} == {marker}


def test_csv_export_refused_without_audit_read(env):
    client = env.app.test_client()
    env.login(client, env.user("Editor"))
    assert client.get("/audit.csv").status_code == 403


def test_ui_audit_page_filters_by_action(env, marker):
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    page = client.get(f"/audit?actor={marker}&action=gadget.").get_data(as_text=True)
    assert "gadget.create" in page and "widget.update" not in page


def test_ui_filter_with_out_of_range_time_is_an_error_page_not_a_crash(env):
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    assert client.get("/audit?since=0001-01-01T00:00:00%2B14:00").status_code == 422
