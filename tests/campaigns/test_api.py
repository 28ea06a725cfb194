"""The campaigns REST API: create with "start now", lifecycle actions, progress, errors."""
from __future__ import annotations

import pytest

from tests.campaigns.helpers import make_list, make_message, sending_settings


@pytest.fixture(scope="module")
def api(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=2)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    token = env.token("Manager")
    client = env.app.test_client()
    list_id, _ = make_list(env, "API list", [{"email": f"api{i}@example.org"} for i in range(5)])
    message_id = make_message(env)

    def call(method: str, path: str, json=None):
        return client.open("/api/v1" + path, method=method, json=json,
                           headers={"Authorization": f"Bearer {token}"})
    call.list_id, call.message_id = list_id, message_id
    return call


def body(api, **extra):
    values = {"name": "API campaign", "message_id": api.message_id, "lists": [api.list_id],
              "from_email": "news@example.com", "from_name": "News"}
    values.update(extra)
    return values


def test_create_returns_201_with_id(api):
    response = api("POST", "/campaigns", body(api))
    assert response.status_code == 201
    assert set(response.get_json()) == {"id"}


def test_new_campaign_is_a_draft(api):
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    found = api("GET", f"/campaigns/{campaign_id}").get_json()
    assert found["state"] == "draft" and found["stats"]["total"] == 0


def test_start_now_sends_everything(api, sink):
    before = len(sink.messages)
    campaign_id = api("POST", "/campaigns", body(api, start_now=True)).get_json()["id"]
    found = api("GET", f"/campaigns/{campaign_id}").get_json()
    assert found["state"] == "finished"
    stats = found["stats"]
    assert (stats["total"], stats["sent"], stats["failed"], stats["in_doubt"], stats["remaining"]) \
        == (5, 5, 0, 0, 0)
    assert len(sink.messages) - before == 5


def test_start_action_sends(api):
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    response = api("POST", f"/campaigns/{campaign_id}/start")
    assert response.status_code == 200
    assert response.get_json()["state"] == "finished"


def test_future_schedule_makes_it_scheduled(api):
    campaign_id = api("POST", "/campaigns", body(api, schedule_at="2099-01-01T09:00:00",
                                                   timezone="Europe/Moscow")).get_json()["id"]
    found = api("GET", f"/campaigns/{campaign_id}").get_json()
    assert found["state"] == "scheduled"
    assert found["schedule_at"].startswith("2099-01-01T06:00:00")


def test_cancel_a_scheduled_campaign(api):
    campaign_id = api("POST", "/campaigns", body(api, schedule_at="2099-01-01T09:00:00")).get_json()["id"]
    assert api("POST", f"/campaigns/{campaign_id}/cancel").get_json()["state"] == "cancelled"


def test_resume_of_a_draft_is_a_conflict(api):
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    response = api("POST", f"/campaigns/{campaign_id}/resume")
    assert response.status_code == 409


def test_unknown_list_is_named(api):
    response = api("POST", "/campaigns", body(api, lists=[999999]))
    assert response.status_code == 404
    assert "list_ids" in response.get_data(as_text=True)


def test_unknown_message_is_named(api):
    response = api("POST", "/campaigns", body(api, message_id=999999))
    assert response.status_code == 404
    assert "message_id" in response.get_data(as_text=True)


def test_bad_timezone_is_named(api):
    response = api("POST", "/campaigns", body(api, timezone="Mars/Olympus"))
    assert response.status_code == 422
    assert "timezone" in response.get_data(as_text=True)


def test_missing_campaign_is_404(api):
    assert api("GET", "/campaigns/999999").status_code == 404


def test_viewer_cannot_start(env, api):
    token = env.token("Viewer")
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    response = env.app.test_client().post(f"/api/v1/campaigns/{campaign_id}/start",
                                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_editor_cannot_start_now(env, api):
    token = env.token("Editor")
    response = env.app.test_client().post("/api/v1/campaigns", json=body(api, start_now=True),
                                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_unknown_segment_is_named(api):
    response = api("POST", "/campaigns", body(api, segments=[999999]))
    assert response.status_code == 404
    assert "segment_ids" in response.get_data(as_text=True)


def test_out_of_range_list_id_is_refused(api):
    response = api("POST", "/campaigns", body(api, lists=[2**40]))
    assert response.status_code == 422
