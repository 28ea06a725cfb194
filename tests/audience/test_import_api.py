"""Import API: the JSON bulk upsert (result per record) and file imports as background jobs."""
from __future__ import annotations

import csv
import io
import uuid

from tests.api.conftest import Api


def uid() -> str:
    return uuid.uuid4().hex[:8]


def new_list(api, **extra) -> int:
    response = api("POST", "/lists", json={"name": "imp-" + uid(), **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def bulk(api, subscribers, **extra):
    return api("POST", "/subscribers/import", json={"subscribers": subscribers, **extra})


def test_bulk_result_per_record_in_order(api):
    tag = uid()
    list_id = new_list(api)
    api("POST", "/suppressions", json={"email": f"blocked-{tag}@example.com", "reason": "test"})
    response = bulk(api, [
        {"email": f"A-{tag}@Example.COM", "first_name": "Anna", "country": "ru"},
        {"email": "no-at-sign"},
        {"email": f"blocked-{tag}@example.com"},
        {"email": f"a-{tag}@example.com".replace("a-", "A-", 1)},
        {"email": f"b-{tag}@example.com", "birth_date": "not a date"},
        {"email": f"c-{tag}@example.com", "favourite": "x"},
    ], lists=[list_id], mode="upsert", status="confirmed")
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert [set(r) for r in results] == [{"email", "status", "error"}] * 6
    assert [r["status"] for r in results] == ["added", "invalid", "suppressed", "invalid", "invalid",
                                              "invalid"]
    assert results[0] == {"email": f"A-{tag}@example.com", "status": "added", "error": None}
    assert results[1]["error"].startswith("email:")
    assert "duplicate of subscriber 0" in results[3]["error"]
    assert results[4]["error"].startswith("birth_date:")
    assert "favourite" in results[5]["error"]
    found = api("GET", f"/subscribers?email=A-{tag}@example.com").get_json()
    assert found[0]["country"] == "RU"


def test_bulk_is_idempotent_by_email(api):
    tag = uid()
    records = [{"email": f"i-{tag}@example.com", "city": "Kazan"}]
    assert bulk(api, records).get_json()["results"][0]["status"] == "added"
    assert bulk(api, records).get_json()["results"][0]["status"] == "unchanged"
    records[0]["city"] = "Perm"
    assert bulk(api, records).get_json()["results"][0]["status"] == "updated"


def test_bulk_update_mode_reports_unknown_people_unchanged(api):
    result = bulk(api, [{"email": f"nobody-{uid()}@example.com"}], mode="update").get_json()["results"][0]
    assert result["status"] == "unchanged"
    assert "mode update adds no one" in result["error"]


def test_bulk_custom_fields_go_under_fields(api):
    key = f"tier_{uid()}"
    assert api("POST", "/fields", json={"key": key, "type": "number"}).status_code == 201
    ok, bad = bulk(api, [{"email": f"f-{uid()}@example.com", "fields": {key: "42"}},
                         {"email": f"g-{uid()}@example.com", "fields": {key: "many"}}]).get_json()["results"]
    assert ok["status"] == "added"
    assert bad["status"] == "invalid" and bad["error"].startswith(f"fields.{key}:")


def test_bulk_refuses_more_than_ten_thousand(api):
    response = bulk(api, [{"email": f"x{i}@example.com"} for i in range(10_001)])
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"].startswith("subscribers")


def test_bulk_unknown_list_is_refused(api):
    response = bulk(api, [{"email": f"x-{uid()}@example.com"}], lists=[999_999])
    assert response.status_code == 404
    assert response.get_json()["errors"][0]["field"] == "lists"


def test_bulk_needs_the_import_permission(env, client):
    viewer = Api(client, env.token("Viewer"))
    assert bulk(viewer, [{"email": "v@example.com"}]).status_code == 403


def upload(api, content: bytes, filename: str, **form):
    data = {"file": (io.BytesIO(content), filename), **form}
    return api("POST", "/imports", data=data, content_type="multipart/form-data")


def test_file_import_job_and_rejected_csv(api):
    tag = uid()
    list_id = new_list(api)
    content = f"Почта;Имя\nm-{tag}@example.com;Мария\nbroken;X\n".encode("cp1251")
    response = upload(api, content, "люди.csv", list=str(list_id), mode="upsert")
    assert response.status_code == 202, response.get_json()
    import_id = response.get_json()["id"]
    assert set(response.get_json()) == {"id"}
    job = api("GET", f"/imports/{import_id}").get_json()
    assert job["state"] == "finished"
    assert job["counts"]["added"] == 1 and job["counts"]["invalid"] == 1
    assert job["progress"]["rows_done"] == 2 and job["progress"]["errors"] == 1
    assert job["list_ids"] == [list_id]
    report = api("GET", f"/imports/{import_id}/rejected.csv")
    assert report.status_code == 200 and report.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [{"line": "3", "file": "", "reason": "email: An email address must have an @-sign.",
                     "row": "broken,X"}]


def test_file_import_by_list_name_with_mapping(api):
    tag = uid()
    name = "named-" + tag
    api("POST", "/lists", json={"name": name})
    response = upload(api, f"x\ty\nn-{tag}@example.com\tNina\n".encode(), "p.txt", list=name,
                      mapping='{"1": "email", "2": "first_name"}', has_header="false")
    job = api("GET", f"/imports/{response.get_json()['id']}").get_json()
    # No header: line 1 is data; "x" is not an address.
    assert job["counts"]["added"] == 1 and job["counts"]["invalid"] == 1


def test_file_import_without_file_is_422(api):
    response = api("POST", "/imports", data={"list": ""}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "file"


def test_bad_mapping_json_is_422(api):
    response = upload(api, b"email\na@example.com\n", "a.csv", mapping="{not json")
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "mapping"


def test_unknown_list_name_is_404_and_a_bad_encoding_422(api):
    response = upload(api, b"email\na@example.com\n", "a.csv", list="no such list " + uid())
    assert response.status_code == 404 and response.get_json()["errors"][0]["field"] == "list"
    response = upload(api, b"email\na@example.com\n", "a.csv", encoding="rot13")
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "encoding"
    response = upload(api, b"email\na@example.com\n", "a.csv", mapping='{"email": "e-mail"}')
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "mapping"


def test_unknown_import_is_404(api):
    assert api("GET", "/imports/999999").status_code == 404
    assert api("GET", "/imports/999999/rejected.csv").status_code == 404


def test_imports_are_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1/subscribers/import", "/api/v1/imports", "/api/v1/imports/{import_id}",
            "/api/v1/imports/{import_id}/rejected.csv"} <= set(paths)
