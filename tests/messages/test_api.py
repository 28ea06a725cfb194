"""The messages REST API: create, versions, restore, compare, preview, templates, OpenAPI."""
from __future__ import annotations

from .conftest import add_subscriber

HTML = "<html><body>\n<p>Hello {{ subscriber.first_name | default('friend') }}</p>\n</body></html>"


def _create(api, **extra) -> dict:
    body = {"name": "Welcome", "subject": "Hi {{ subscriber.first_name }} 👋", "preheader": "p",
            "html": HTML} | extra
    response = api("POST", "/messages", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_returns_id_and_version_1(api):
    created = _create(api)
    assert created["version"] == 1 and isinstance(created["id"], int)


def test_create_generates_the_text_version(api):
    created = _create(api)
    message = api("GET", f"/messages/{created['id']}").get_json()
    assert message["text_follows_html"] is True
    assert "Hello {{ subscriber.first_name | default('friend') }}" in message["text"]


def test_given_text_is_kept_and_stops_following(api):
    created = _create(api, text="Plain {{ subscriber.email }}")
    message = api("GET", f"/messages/{created['id']}").get_json()
    assert message["text"] == "Plain {{ subscriber.email }}" and message["text_follows_html"] is False


def test_put_makes_a_new_version_with_a_summary(api):
    created = _create(api)
    response = api("PUT", f"/messages/{created['id']}", json={"subject": "Changed"})
    assert response.status_code == 200 and response.get_json()["version"] == 2
    versions = api("GET", f"/messages/{created['id']}/versions").get_json()
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["summary"] == "subject changed" and versions[0]["created_by"]


def test_restore_saves_the_old_content_as_newest(api):
    created = _create(api)
    api("PUT", f"/messages/{created['id']}", json={"html": "<p>second</p>"})
    restored = api("POST", f"/messages/{created['id']}/versions/1/restore").get_json()
    assert restored["version"] == 3
    current = api("GET", f"/messages/{created['id']}").get_json()
    assert current["html"] == HTML and current["summary"] == "restored version 1"


def test_compare_gives_unified_diffs(api):
    created = _create(api)
    api("PUT", f"/messages/{created['id']}", json={"html": HTML.replace("Hello", "Hi")})
    result = api("GET", f"/messages/{created['id']}/compare?from_version=1&to_version=2").get_json()
    assert "-<p>Hello {{ subscriber.first_name | default('friend') }}</p>" in result["diffs"]["html"]
    assert result["diffs"]["subject"] == []


def test_preview_with_sample_data(api):
    created = _create(api)
    result = api("POST", f"/messages/{created['id']}/preview", json={}).get_json()
    assert result["subject"] == "Hi Jane 👋" and "Hello Jane" in result["html"]
    assert "Hello Jane" in result["text"]


def test_preview_for_a_subscriber_by_id(api, env):
    subscriber_id = add_subscriber(env, "olga@example.com", first_name="Olga",
                                   custom={"loyalty_tier": "Gold"})
    created = _create(api, html="<p>{{ subscriber.first_name }} {{ subscriber.custom.loyalty_tier }}</p>")
    result = api("POST", f"/messages/{created['id']}/preview", json={"subscriber_id": subscriber_id}).get_json()
    assert "Olga Gold" in result["html"] and result["subject"] == "Hi Olga 👋"


def test_preview_for_a_subscriber_by_email(api, env):
    add_subscriber(env, "petr@example.com", first_name="Пётр")
    created = _create(api)
    result = api("POST", f"/messages/{created['id']}/preview", json={"email": "petr@example.com"}).get_json()
    assert "Hello Пётр" in result["html"]


def test_preview_of_unknown_subscriber_is_404(api):
    created = _create(api)
    response = api("POST", f"/messages/{created['id']}/preview", json={"email": "nobody@example.com"})
    assert response.status_code == 404


def test_preview_template_error_is_422_with_line(api):
    created = _create(api, html="<p>one</p>\n<p>two</p>\n<p>{{ subscriber.nickname }}</p>")
    response = api("POST", f"/messages/{created['id']}/preview", json={})
    body = response.get_json()
    assert response.status_code == 422
    assert body["line"] == 3 and "nickname" in body["message"] and body["part"] == "html"


def test_preview_syntax_error_is_422_with_line(api):
    created = _create(api, html="<p>one</p>\n{% for x in %}\n")
    body = api("POST", f"/messages/{created['id']}/preview", json={}).get_json()
    assert body["status"] == 422 and body["line"] == 2


def test_save_reports_problems_but_keeps_the_version(api):
    created = _create(api, html="<p>{{ customer.name }}</p>")
    assert created["problems"] and created["problems"][0]["line"] == 1


def test_empty_subject_is_refused_naming_the_field(api):
    response = api("POST", "/messages", json={"name": "x", "subject": "   ", "html": ""})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "subject"


def test_unknown_message_is_404(api):
    assert api("GET", "/messages/999999").status_code == 404


def test_builtin_templates_ship(api):
    names = [t["name"] for t in api("GET", "/templates").get_json() if t["builtin"]]
    assert len(names) >= 3


def test_message_from_a_template_renders(api):
    template = api("GET", "/templates").get_json()[0]
    created = api("POST", f"/templates/{template['id']}/messages", json={"name": "From starter"}).get_json()
    result = api("POST", f"/messages/{created['id']}/preview", json={})
    assert result.status_code == 200, result.get_json()


def test_builtin_template_cannot_be_deleted(api):
    template = next(t for t in api("GET", "/templates").get_json() if t["builtin"])
    assert api("DELETE", f"/templates/{template['id']}").status_code == 403


def test_saved_template_round_trip(api):
    created = api("POST", "/templates", json={"name": "Mine", "html": "<p>x</p>"}).get_json()
    assert api("PATCH", f"/templates/{created['id']}", json={"name": "Mine 2"}).get_json()["name"] == "Mine 2"
    assert api("DELETE", f"/templates/{created['id']}").status_code == 204


def test_text_version_endpoint_formats_links(api):
    result = api("POST", "/messages/text-version", json={"html": '<h1>Sale</h1><p><a href="https://x.example/">Shop</a></p>'})
    assert "Shop [https://x.example/]" in result.get_json()["text"]


def test_openapi_documents_the_messages_routes(api, env):
    spec = env.app.test_client().get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/messages", "/api/v1/messages/{message_id}", "/api/v1/messages/{message_id}/versions",
                 "/api/v1/messages/{message_id}/preview", "/api/v1/messages/{message_id}/send-test",
                 "/api/v1/templates", "/api/v1/media"):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/api/v1/media"]["post"]["requestBody"]["content"]


def test_viewer_cannot_create(env):
    token = env.token("Viewer")
    response = env.app.test_client().post("/api/v1/messages", json={"name": "x", "subject": "y"},
                                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_a_message_with_external_data_saves_again_and_again(api):
    """Issue 15 item 1: every save after adding a data source answered 500."""
    created = _create(api)
    path = f"/messages/{created['id']}"
    source = {"kind": "document", "document": {"promo": "SPRING"}}
    assert api("PUT", path, json={"data_source": source}).status_code == 200
    for subject in ("Second save", "Third save"):
        response = api("PUT", path, json={"subject": subject})
        assert response.status_code == 200, response.get_data(as_text=True)
    message = api("GET", path).get_json()
    assert message["version"] == 4 and message["data_source"] == source
    assert api("GET", f"{path}/versions").get_json()[0]["summary"] == "subject changed"
