"""Every API error is an RFC 9457 problem document of one shape."""
import pytest

PROBLEM_KEYS = {"type", "title", "status"}


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status and body["title"]
    return body


def test_401_without_token(client):
    _assert_problem(client.get("/api/v1/me"), 401)


@pytest.mark.parametrize("header", ["Bearer ak_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz",
                                    "Bearer " + "x" * 5000])
def test_401_with_bad_credentials(client, header):
    _assert_problem(client.get("/api/v1/me", headers={"Authorization": header}), 401)


def test_403_names_the_missing_permission(env, api):
    body = _assert_problem(api("GET", "/users", token=env.token("Viewer")), 403)
    assert "users:manage" in body["detail"]


def test_404_for_missing_object(api):
    body = _assert_problem(api("GET", "/users/424242"), 404)
    assert "424242" in body["detail"]


def test_404_for_unknown_api_path(api):
    _assert_problem(api("GET", "/no-such-thing"), 404)


def test_404_for_id_beyond_integer_range(api):
    _assert_problem(api("GET", f"/users/{2**63}"), 404)


def test_405_for_wrong_method(api):
    _assert_problem(api("PUT", "/me"), 405)


def test_422_lists_every_bad_field(api):
    body = _assert_problem(api("POST", "/users", json={"email": 5, "password": "x"}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"email", "password", "role"} <= fields


def test_422_for_malformed_json(api):
    response = api("POST", "/users", data="{not json", headers={"Content-Type": "application/json"})
    _assert_problem(response, 422)


def test_openapi_document_is_public_and_lists_operations(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/me", "/api/v1/users", "/api/v1/tokens", "/api/v1/audit"} <= set(document["paths"])


def test_two_models_with_one_name_are_two_components(client):
    """A workflow trigger and the engagement report are both `Engagement`: each keeps its own
    schema (one used to overwrite the other, so the document described a trigger as a report)."""
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    trigger, report = schemas["automation.definition.Engagement"], schemas["reports.api.Engagement"]
    assert "type" in trigger["properties"] and "totals" in report["properties"]
    answer = document["paths"]["/api/v1/reports/engagement"]["get"]["responses"]["200"]
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/reports.api.Engagement"}


def test_request_schemas_say_what_the_services_check(client):
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    # one of two fields, an email address, a closed dict of list ids, a time zone
    assert len(schemas["SuppressionCreate"]["oneOf"]) == 2
    assert schemas["UserCreate"]["properties"]["email"]["format"] == "email"
    assert schemas["SubscriberPatch"]["properties"]["lists"]["additionalProperties"] is False
    assert "Europe/Moscow" in schemas["CampaignCreate"]["properties"]["timezone"]["enum"]



def test_id_in_a_body_beyond_integer_range_is_422_naming_it(api):
    response = api("POST", "/tokens", json={"name": "x", "user_id": 2**40})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "user_id"


def test_database_refusing_a_value_counts_as_bad_input(env):
    """The safety net behind model bounds: what the database cannot hold is a 422, not a 500."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from altkraft_onprem import db
    from altkraft_onprem.access.models import audit_log
    from altkraft_onprem.api import is_bad_value_for_storage

    with pytest.raises(Exception) as info:
        with db.write(env.engine) as conn:
            conn.execute(insert(audit_log).values(at=datetime.now(UTC), actor="x", action="x",
                                                  actor_user_id=2**70))
    assert is_bad_value_for_storage(info.value)


def _unbounded_integers(node, schemas, where: str, seen: set, found: list) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref", "").rpartition("/")[2]
        if ref and ref not in seen:
            seen.add(ref)
            _unbounded_integers(schemas[ref], schemas, f"{where} {ref}", seen, found)
        if node.get("type") == "integer" and not {"minimum", "maximum"} <= set(node):
            found.append(where)
        for key, value in node.items():
            _unbounded_integers(value, schemas, f"{where}.{key}", seen, found)
    elif isinstance(node, list):
        for value in node:
            _unbounded_integers(value, schemas, where, seen, found)


def test_every_integer_a_request_may_send_is_bounded(client):
    """An unbounded integer is valid to the document and too large for the database (a 422 on
    PostgreSQL, where an INTEGER ends at 2**31 - 1): every integer in a query or a body says
    its range (`api.Id`, `le=MAX_ID`)."""
    document = client.get("/api/v1/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    found: list[str] = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            for parameter in op["parameters"]:
                if parameter["in"] == "query":
                    _unbounded_integers(parameter["schema"], schemas,
                                        f"{method.upper()} {path} ?{parameter['name']}", set(), found)
            for content in (op.get("requestBody") or {}).get("content", {}).values():
                _unbounded_integers(content["schema"], schemas, f"{method.upper()} {path}", set(), found)
    assert not found, found


@pytest.mark.parametrize("body", [{"email": "first.middle.last@example.com"}, {"domain": "пример.рф"}])
def test_forms_beyond_the_documents_plain_pattern_are_accepted(api, body):
    # docs/api.md: an email or domain pattern in the document is the plain form that is always
    # accepted, not every form the server takes.
    response = api("POST", "/suppressions", json=body)
    assert response.status_code == 201, response.get_json()
