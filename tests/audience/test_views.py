"""The audience pages: every page renders, forms change things, roles are respected."""
from __future__ import annotations

import json
import uuid

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from tests.conftest import csrf_token

from .conftest import ACTOR


@pytest.fixture(scope="module")
def admin(env):
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    return client


def post(client, url, data, page=None):
    token = csrf_token(client.get(page or "/audience/").get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def test_every_page_renders(env, admin, people):
    list_id = people.list("views-" + uuid.uuid4().hex[:6])
    sid = people.add(f"v-{uuid.uuid4().hex[:6]}@example.com", [list_id], first_name="Vera")
    with db.write(env.engine) as conn:
        seg = segment_service.create_segment(conn, ACTOR, "S " + uuid.uuid4().hex[:6],
                                             {"op": "and", "rules": [{"list": list_id}]})
    for url in ("/audience/", f"/audience/lists/{list_id}", "/audience/subscribers",
                f"/audience/subscribers?list={list_id}&status=confirmed&q=vera",
                f"/audience/subscribers?segment={seg}", f"/audience/subscribers/{sid}",
                f"/audience/subscribers/{sid}/edit", "/audience/subscribers/new",
                "/audience/segments", "/audience/segments/new", f"/audience/segments/{seg}",
                "/audience/fields", "/audience/suppression", "/audience/trash"):
        response = admin.get(url)
        assert response.status_code == 200, url
    assert b"Vera" in admin.get(f"/audience/subscribers?segment={seg}").data


def test_create_list_and_subscriber_through_forms(admin):
    name = "Form list " + uuid.uuid4().hex[:6]
    response = post(admin, "/audience/lists", {"name": name, "optin": "double"})
    assert response.status_code == 302
    list_id = int(response.headers["Location"].rsplit("/", 1)[1])
    email = f"f-{uuid.uuid4().hex[:6]}@example.com"
    response = post(admin, "/audience/subscribers/new",
                    {"email": email, "first_name": "Fay", "lists": str(list_id),
                     "status": "unconfirmed"}, page="/audience/subscribers/new")
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert email in page and "Resend confirmation" in page


def test_bad_subscriber_form_keeps_input_and_names_the_field(admin):
    response = post(admin, "/audience/subscribers/new",
                    {"email": "ok@example.com", "first_name": "Kept", "country": "Atlantis"},
                    page="/audience/subscribers/new")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "country" in text and "Kept" in text


def test_live_count_endpoint_needs_csrf_and_counts(env, admin, people):
    list_id = people.list("count-" + uuid.uuid4().hex[:6])
    people.add(f"c-{uuid.uuid4().hex[:6]}@example.com", [list_id])
    page = admin.get("/audience/segments/new").get_data(as_text=True)
    body = json.dumps({"conditions": {"op": "and", "rules": [{"list": list_id}]}})
    refused = admin.post("/audience/segments/count", data=body, content_type="application/json")
    assert refused.status_code == 400
    response = admin.post("/audience/segments/count", data=body, content_type="application/json",
                          headers={"X-CSRFToken": csrf_token(page)})
    assert response.get_json() == {"count": 1, "label": "subscriber matches"}


def test_suppression_paste_reports_bad_entries(admin):
    domain = f"paste-{uuid.uuid4().hex[:6]}.example"
    response = post(admin, "/audience/suppression",
                    {"entries": f"one@{domain}\n@{domain}\nnot valid@@", "reason": "paste"},
                    page="/audience/suppression")
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and "invalid-entries" in text
    assert f"one@{domain}" in text and f"@{domain}" in text


def test_export_csv_of_a_list(admin, people):
    list_id = people.list("exp-" + uuid.uuid4().hex[:6])
    people.add(f"x-{uuid.uuid4().hex[:6]}@example.com", [list_id], first_name="=evil()")
    response = post(admin, "/audience/export", {"list": str(list_id), "fields": "email",
                                                "format": "csv"})
    admin_fields = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert admin_fields.lstrip("\ufeff").startswith("email")


def test_viewer_sees_but_cannot_change(env, client, people):
    env.login(client, env.user("Viewer"))
    assert client.get("/audience/").status_code == 200
    assert b"new-list" not in client.get("/audience/").data
    assert client.get("/audience/trash").status_code == 403
    page = client.get("/audience/").get_data(as_text=True)
    assert client.post("/audience/lists", data={"name": "x", "csrf_token": csrf_token(page)}
                       ).status_code == 403


def test_public_form_snippet_on_the_list_page(env, admin, people):
    with db.write(env.engine) as conn:
        from altkraft_onprem.audience import lists
        list_id = lists.create_list(conn, ACTOR, "pub-" + uuid.uuid4().hex[:6], visibility="public")
    text = admin.get(f"/audience/lists/{list_id}").get_data(as_text=True)
    assert f"/p/subscribe/{list_id}" in text and "website" in text


def test_suppression_from_an_xlsx_file(env, admin):
    import io

    from openpyxl import Workbook

    from altkraft_onprem.audience.suppression import is_suppressed
    tag = uuid.uuid4().hex[:6]
    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "E-mail"])
    sheet.append(["Ann", f"ann-{tag}@example.com"])
    sheet.append(["Dom", f"@dom-{tag}.example"])
    sheet.append(["Bad", "not an address"])
    data = io.BytesIO()
    book.save(data)
    token = csrf_token(admin.get("/audience/suppression").get_data(as_text=True))
    response = admin.post("/audience/suppression", data={
        "csrf_token": token, "reason": "file", "entries": "",
        "file": (io.BytesIO(data.getvalue()), "../../list.xlsx")},
        content_type="multipart/form-data")
    assert response.status_code == 200
    assert "not an address" in response.get_data(as_text=True)
    with db.read(env.engine) as conn:
        assert is_suppressed(conn, f"ann-{tag}@example.com")
        assert is_suppressed(conn, f"x@dom-{tag}.example")


def test_segment_counts_load_separately(env, admin, people):
    list_id = people.list("sc-" + uuid.uuid4().hex[:6])
    people.add(f"sc-{uuid.uuid4().hex[:6]}@example.com", [list_id])
    with db.write(env.engine) as conn:
        seg = segment_service.create_segment(conn, ACTOR, "SC " + uuid.uuid4().hex[:6],
                                             {"op": "and", "rules": [{"list": list_id}]})
    assert f"/audience/segments/{seg}/count.json".encode() in admin.get("/audience/segments").data
    assert admin.get(f"/audience/segments/{seg}/count.json").get_json() == {"count": 1}
