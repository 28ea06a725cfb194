"""Split tests through the REST API: create, read the figures, pick the winner, errors."""
from __future__ import annotations

import pytest

from tests.campaigns.helpers import make_list, make_message, sending_settings


@pytest.fixture(scope="module")
def api(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    token = env.token("Manager")
    client = env.app.test_client()
    list_id, _ = make_list(env, "API split", [{"email": f"ab{i}@example.org"} for i in range(20)])

    def call(method: str, path: str, json=None):
        return client.open("/api/v1" + path, method=method, json=json,
                           headers={"Authorization": f"Bearer {token}"})
    call.list_id, call.message_id = list_id, make_message(env)
    call.other_message_id = make_message(env, subject="Другое")
    return call


def body(api, split=None, **extra):
    split = split if split is not None else {
        "variants": [{"subject": "A subject"}, {"subject": "B subject", "from_name": "B team"}],
        "test_percent": 50, "metric": "clicks", "wait_hours": 4}
    values = {"name": "A/B", "message_id": api.message_id, "lists": [api.list_id],
              "from_email": "news@example.com", "from_name": "News", "split_test": split}
    values.update(extra)
    return values


def _errors(response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.get_json()
    return {e["field"]: e["message"] for e in response.get_json()["errors"]}


def test_create_keeps_the_201_id_contract(api):
    response = api("POST", "/campaigns", body(api))
    assert response.status_code == 201 and set(response.get_json()) == {"id"}


def test_a_draft_shows_its_pending_split_test(api):
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    found = api("GET", f"/campaigns/{campaign_id}/split-test").get_json()
    assert (found["state"], found["metric"], found["test_percent"], found["winner"]) == \
        ("pending", "clicks", 50, None)
    assert [(v["letter"], v["subject"], v["from_name"]) for v in found["variants"]] == \
        [("A", "A subject", None), ("B", "B subject", "B team")]


def test_started_split_test_sends_the_test_and_holds_the_rest(api, sink):
    before = len(sink.messages)
    campaign_id = api("POST", "/campaigns", body(api, start_now=True)).get_json()["id"]
    found = api("GET", f"/campaigns/{campaign_id}/split-test").get_json()
    assert found["state"] == "testing" and found["held"] == 10
    assert [(v["recipients"], v["delivered"]) for v in found["variants"]] == [(5, 5), (5, 5)]
    assert all(v["version_id"] for v in found["variants"])
    assert len(sink.messages) - before == 10
    stats = api("GET", f"/campaigns/{campaign_id}").get_json()["stats"]
    assert (stats["held"], stats["remaining"]) == (10, 10)


def test_pick_the_winner_sends_it_to_the_rest(api, sink):
    campaign_id = api("POST", "/campaigns", body(api, start_now=True)).get_json()["id"]
    before = len(sink.messages)
    response = api("POST", f"/campaigns/{campaign_id}/split-test/winner", {"variant": 2})
    assert response.status_code == 200
    found = response.get_json()
    assert (found["state"], found["winner"], found["winner_letter"], found["held"]) == \
        ("decided", 2, "B", 0)
    new = sink.messages[before:]
    assert len(new) == 10 and {str(m["Subject"]) for m in new} == {"B subject"}
    assert api("GET", f"/campaigns/{campaign_id}").get_json()["state"] == "finished"
    again = api("POST", f"/campaigns/{campaign_id}/split-test/winner", {})
    assert again.status_code == 409


def test_pick_now_without_a_variant_uses_the_metric(api):
    campaign_id = api("POST", "/campaigns", body(api, start_now=True)).get_json()["id"]
    found = api("POST", f"/campaigns/{campaign_id}/split-test/winner", {}).get_json()
    assert found["winner"] == 1 and found["decided_by"] != "automatic"   # no clicks: A by the tie rule


def test_a_campaign_without_split_test_is_404(api):
    campaign_id = api("POST", "/campaigns", body(api, split_test=None)).get_json()["id"]
    assert api("GET", f"/campaigns/{campaign_id}/split-test").status_code == 404


@pytest.mark.parametrize("percent", [0, 101, -5])
def test_percent_out_of_range(api, percent):
    split = {"variants": [{"subject": "a"}, {"subject": "b"}], "test_percent": percent}
    assert "split_test.test_percent" in _errors(api("POST", "/campaigns", body(api, split)))


def test_one_variant_is_not_a_test(api):
    split = {"variants": [{"subject": "only"}]}
    assert "split_test.variants" in _errors(api("POST", "/campaigns", body(api, split)))


def test_six_variants_are_too_many(api):
    split = {"variants": [{"subject": str(i)} for i in range(6)]}
    assert "split_test.variants" in _errors(api("POST", "/campaigns", body(api, split)))


def test_unknown_message_names_the_variant(api):
    split = {"variants": [{"subject": "a"}, {"message_id": 999999}]}
    errors = _errors(api("POST", "/campaigns", body(api, split)), 404)
    assert "message 999999 does not exist" in errors["split_test.variants.1.message_id"]


def test_identical_variants_are_refused(api):
    split = {"variants": [{"subject": "same"}, {"subject": "same"}]}
    errors = _errors(api("POST", "/campaigns", body(api, split)))
    assert errors["split_test.variants.1"] == "variant B is the same as variant A"


@pytest.mark.parametrize("split,field", [
    ({"variants": [{"subject": "a"}, {"subject": "b"}], "metric": "revenue"}, "split_test.metric"),
    ({"variants": [{"subject": "a"}, {"subject": "b"}], "wait_hours": 1000}, "split_test.wait_hours"),
    ({"variants": [{"subject": "a"}, {"colour": "b"}]}, "split_test.variants.1.colour"),
])
def test_other_bad_fields_are_named(api, split, field):
    assert field in _errors(api("POST", "/campaigns", body(api, split)))


def test_winner_of_an_unknown_variant(api):
    campaign_id = api("POST", "/campaigns", body(api, start_now=True)).get_json()["id"]
    response = api("POST", f"/campaigns/{campaign_id}/split-test/winner", {"variant": 3})
    assert _errors(response) == {"variant": "a variant from 1 to 2"}


def test_patch_removes_the_split_test(api):
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    assert api("PATCH", f"/campaigns/{campaign_id}", {"split_test": None}).status_code == 200
    assert api("GET", f"/campaigns/{campaign_id}/split-test").status_code == 404


def test_the_openapi_document_describes_split_tests(api):
    spec = api("GET", "/openapi.json").get_json()
    assert "/api/v1/campaigns/{campaign_id}/split-test" in spec["paths"] or \
        "/campaigns/{campaign_id}/split-test" in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert {"SplitTest", "SplitVariant", "SplitTestOut", "WinnerChoice"} <= set(schemas)


@pytest.fixture(scope="module")
def archived_message(env, api):
    from altkraft_onprem import db
    from altkraft_onprem.messages import service as messages
    from tests.campaigns.helpers import ACTOR

    message_id = make_message(env, subject="Old")
    with db.write(env.engine) as conn:
        messages.archive_message(conn, ACTOR, message_id)
    return message_id


def test_an_archived_message_cannot_be_the_campaigns(api, archived_message):
    plain = body(api, message_id=archived_message)
    del plain["split_test"]
    assert "archived" in _errors(api("POST", "/campaigns", plain), 409)["message_id"]


def test_an_archived_message_cannot_be_a_variants(api, archived_message):
    split = {"variants": [{"subject": "A"}, {"message_id": archived_message}],
             "test_percent": 50, "metric": "opens", "wait_hours": 1}
    errors = _errors(api("POST", "/campaigns", body(api, split=split)), 409)
    assert "variant B" in errors["split_test.variants.1.message_id"]
    assert "archived" in errors["split_test.variants.1.message_id"]
