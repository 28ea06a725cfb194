"""The audience REST contract: lists with counts, subscribers by email, PATCH, DELETE to trash."""
from __future__ import annotations

import uuid


def new_list(api, **extra) -> dict:
    response = api("POST", "/lists", json={"name": "L-" + uuid.uuid4().hex[:8], **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_list_returns_id_and_counts(api):
    created = new_list(api, optin="double")
    assert created["optin"] == "double"
    got = api("GET", f"/lists/{created['id']}").get_json()
    assert got["counts"] == {"confirmed": 0, "unconfirmed": 0, "unsubscribed": 0}


def test_duplicate_list_name_is_409(api):
    created = new_list(api)
    response = api("POST", "/lists", json={"name": created["name"]})
    assert response.status_code == 409
    assert response.get_json()["errors"][0]["field"] == "name"


def test_subscriber_create_find_patch(api):
    list_id = new_list(api)["id"]
    api("POST", "/fields", json={"key": "plan_api", "type": "choice", "choices": ["a", "b"]})
    response = api("POST", "/subscribers", json={
        "email": "Dora@Example.COM", "first_name": "Dora", "country": "de", "lists": [list_id],
        "fields": {"plan_api": "A"}})
    assert response.status_code == 201, response.get_json()
    person = response.get_json()
    assert person["email"] == "Dora@example.com" and person["country"] == "DE"
    assert person["fields"] == {"plan_api": "a"}
    found = api("GET", "/subscribers?email=Dora@EXAMPLE.com").get_json()
    assert [p["id"] for p in found] == [person["id"]]
    patched = api("PATCH", f"/subscribers/{person['id']}", json={
        "city": "Berlin", "lists": {str(list_id): "unsubscribed"}}).get_json()
    assert patched["city"] == "Berlin"
    assert patched["lists"][0]["status"] == "unsubscribed"
    counts = api("GET", f"/lists/{list_id}").get_json()["counts"]
    assert counts["unsubscribed"] == 1


def test_bad_field_names_the_field(api):
    response = api("POST", "/subscribers", json={"email": "x@example.com", "timezone": "Mars/Base"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "timezone"
    response = api("POST", "/subscribers", json={"email": "not-an-email"})
    assert response.get_json()["errors"][0]["field"] == "email"


def test_delete_moves_to_trash_and_restore_brings_back_memberships(api):
    list_id = new_list(api)["id"]
    person = api("POST", "/subscribers", json={"email": f"t-{uuid.uuid4().hex[:6]}@example.com",
                                               "lists": [list_id]}).get_json()
    deleted = api("DELETE", f"/subscribers/{person['id']}").get_json()
    assert deleted["count"] == 1
    assert api("GET", f"/subscribers/{person['id']}").status_code == 404
    assert api("GET", f"/lists/{list_id}").get_json()["counts"]["confirmed"] == 0
    trash = api("GET", "/trash").get_json()
    assert person["id"] in [i["id"] for i in trash["items"]]
    restored = api("POST", "/trash/restore", json={"ids": [person["id"]]}).get_json()
    assert restored == {"restored": 1}
    back = api("GET", f"/subscribers/{person['id']}").get_json()
    assert [m["list_id"] for m in back["lists"]] == [list_id]


def test_restore_a_whole_deletion_batch(api):
    list_id = new_list(api)["id"]
    ids = [api("POST", "/subscribers", json={"email": f"b{i}-{uuid.uuid4().hex[:6]}@example.com",
                                             "lists": [list_id]}).get_json()["id"]
           for i in range(3)]
    keep = api("POST", "/subscribers", json={"email": f"k-{uuid.uuid4().hex[:6]}@example.com"}
               ).get_json()["id"]
    batch = api("POST", "/subscribers/delete", json={"list": list_id}).get_json()
    assert batch["count"] == 3
    api("DELETE", f"/subscribers/{keep}")
    trash = api("GET", f"/trash?batch={batch['batch']}").get_json()
    assert sorted(i["id"] for i in trash["items"]) == sorted(ids)
    assert api("POST", "/trash/restore", json={"batch": batch["batch"]}).get_json() == {"restored": 3}
    assert api("GET", f"/lists/{list_id}").get_json()["counts"]["confirmed"] == 3
    assert api("GET", f"/subscribers/{keep}").status_code == 404


def test_restore_needs_ids_or_batch(api):
    assert api("POST", "/trash/restore", json={}).status_code == 422


def test_suppression_by_domain_blocks_everyone_there(api, env):
    from altkraft_onprem import db
    from altkraft_onprem.audience import service
    list_id = new_list(api)["id"]
    domain = f"blocked-{uuid.uuid4().hex[:6]}.example"
    a = api("POST", "/subscribers", json={"email": f"a@{domain}", "lists": [list_id]}).get_json()
    b = api("POST", "/subscribers", json={"email": "b@ok-" + domain, "lists": [list_id]}).get_json()
    with db.read(env.engine) as conn:
        assert service.is_sendable(conn, a["id"], [list_id])
    response = api("POST", "/suppressions", json={"domain": "@" + domain.upper(), "reason": "asked"})
    assert response.status_code == 201
    entry = response.get_json()
    assert entry["domain"] == domain and entry["email"] is None
    with db.read(env.engine) as conn:
        assert not service.is_sendable(conn, a["id"], [list_id])
        assert service.is_sendable(conn, b["id"], [list_id])
        eligible = set(conn.execute(service.audience_query(conn, [list_id])).scalars())
    assert eligible == {b["id"]}
    assert api("GET", f"/subscribers/{a['id']}").get_json()["state"] == "suppressed"
    assert api("DELETE", f"/suppressions/{entry['id']}").status_code == 204
    assert api("GET", f"/subscribers/{a['id']}").get_json()["state"] == "active"
    audit = api("GET", "/audit?action=suppression.remove").get_json()
    assert audit[0]["details"]["domain"] == domain


def test_suppression_needs_exactly_one_target(api):
    assert api("POST", "/suppressions", json={"reason": "x"}).status_code == 422
    bad = api("POST", "/suppressions", json={"email": "nope"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "email"


def test_live_count_endpoint(api):
    response = api("POST", "/segments/count", json={"conditions": {"op": "and", "rules": [
        {"field": "email", "operator": "contains", "value": "'; DROP TABLE x; --"}]}})
    assert response.get_json() == {"count": 0}
    bad = api("POST", "/segments/count", json={"conditions": {"op": "and", "rules": [
        {"field": "email", "operator": "gt", "value": 1}]}})
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["field"] == "conditions.rules[0].operator"


def test_saved_segment_as_audience(api, env):
    from altkraft_onprem import db
    from altkraft_onprem.audience import service
    list_id = new_list(api)["id"]
    tag = uuid.uuid4().hex[:6]
    ids = [api("POST", "/subscribers", json={"email": f"s{i}-{tag}@example.com", "lists": [list_id],
                                             "city": "Rome" if i else "Oslo"}).get_json()["id"]
           for i in range(3)]
    segment = api("POST", "/segments", json={"name": "Rome " + tag, "conditions": {
        "op": "and", "rules": [{"field": "city", "operator": "eq", "value": "Rome"}]}}).get_json()
    assert api("GET", f"/segments/{segment['id']}/count").get_json()["count"] >= 2
    with db.read(env.engine) as conn:
        chosen = set(conn.execute(service.audience_query(conn, [list_id], [segment["id"]])).scalars())
    assert chosen == set(ids[1:])


def test_viewer_cannot_write(api, env):
    token = env.token("Viewer")
    assert api("POST", "/lists", token=token, json={"name": "nope"}).status_code == 403
    assert api("GET", "/lists", token=token).status_code == 200


def test_export_list_csv_and_xlsx_over_the_api(api):
    import io

    from openpyxl import load_workbook
    list_id = new_list(api)["id"]
    api("POST", "/subscribers", json={"email": f"e-{uuid.uuid4().hex[:6]}@example.com",
                                      "first_name": "@SUM(1)", "lists": [list_id]})
    response = api("GET", f"/lists/{list_id}/export.csv?fields=email,first_name,list_status")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "email,first_name,list_status" and ",'@SUM(1),confirmed" in lines[1]
    book = api("GET", f"/lists/{list_id}/export.xlsx?fields=first_name")
    assert load_workbook(io.BytesIO(book.data)).active["A2"].value == "'@SUM(1)"
    bad = api("GET", f"/lists/{list_id}/export.csv?fields=email,password")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "fields"


def test_list_form_settings_over_the_api(api):
    list_id = new_list(api, optin="double", visibility="public")["id"]
    patched = api("PATCH", f"/lists/{list_id}", json={"form": {
        "fields": ["first_name", "city"], "confirm_subject": "Please confirm {{ list_name }}"}})
    assert patched.status_code == 200, patched.get_json()
    form = patched.get_json()["form"]
    assert form["fields"] == ["first_name", "city"] and form["title"]
    assert form["confirm_subject"] == "Please confirm {{ list_name }}"
    bad = api("PATCH", f"/lists/{list_id}", json={"form": {"fields": ["password"]}})
    assert bad.status_code == 422
