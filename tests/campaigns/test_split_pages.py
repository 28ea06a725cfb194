"""Split tests on the pages and in the reports: the form, the campaign page, per-variant
report and clickmap (UI and API)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.campaigns import splittest
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.tracking.buffer import BUFFER
from tests.campaigns.helpers import HTML, make_list, make_message, record_events, sending_settings
from tests.conftest import csrf_token


@pytest.fixture(scope="module")
def world(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    list_id, _ = make_list(env, "Pages split", [{"email": f"pg{i}@example.org"} for i in range(20)])
    first = make_message(env)
    second = make_message(env, HTML.replace("sale?x=1", "variant-b"), subject="Второе письмо")
    client = env.app.test_client()
    env.login(client, env.user("Manager"))
    return {"client": client, "list_id": list_id, "first": first, "second": second}


def _form(world, **extra) -> dict:
    data = {"name": "UI split", "message_id": str(world["first"]), "lists": str(world["list_id"]),
            "from_email": "news@example.com", "from_name": "News", "timezone": "UTC",
            "split_test": "on", "variant_subject": ["Тема A", "", "", "", ""],
            "variant_from_name": ["", "Команда B", "", "", ""],
            "variant_message_id": ["", str(world["second"]), "", "", ""],
            "test_percent": "50", "metric": "clicks", "wait_hours": "2.5",
            "track_opens": "on", "track_clicks": "on"}
    data.update(extra)
    page = world["client"].get("/campaigns/new")
    data["csrf_token"] = csrf_token(page.get_data(as_text=True))
    return data


def test_the_form_offers_the_split_test(world):
    html = world["client"].get("/campaigns/new").get_data(as_text=True)
    assert 'id="split_test_on"' in html and html.count('name="variant_subject"') == 5
    assert "campaigns/splittest.js" in html


def test_the_form_creates_a_split_test(env, world):
    response = world["client"].post("/campaigns/new", data=_form(world, start_now="on"))
    assert response.status_code == 302
    campaign_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    with db.read(env.engine) as conn:
        test = splittest.get(conn, campaign_id)
    assert (test["state"], test["test_percent"], test["metric"], test["wait_hours"]) == \
        ("testing", 50, "clicks", 2.5)
    assert [(v["subject"], v["from_name"], v["message_id"]) for v in test["variants"]] == \
        [("Тема A", None, None), (None, "Команда B", world["second"])]
    world["campaign_id"] = campaign_id


def test_a_bad_percent_is_named_and_the_values_kept(world):
    response = world["client"].post("/campaigns/new", data=_form(world, test_percent="150"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "split_test.test_percent: a whole number from 1 to 100" in html
    assert 'value="Тема A"' in html and 'value="150"' in html


def test_the_campaign_page_shows_the_variants_and_picks_a_winner(env, world, sink):
    campaign_id = world["campaign_id"]
    page = world["client"].get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="split-variants"' in page and 'id="pick-winner"' in page
    assert "Тема A" in page and "Команда B" in page
    before = len(sink.messages)
    data = {"csrf_token": csrf_token(page), "variant": "2"}
    response = world["client"].post(f"/campaigns/{campaign_id}/split-test/winner", data=data)
    assert response.status_code == 302
    assert {str(m["Subject"]) for m in sink.messages[before:]} == {"Второе письмо"}
    page = world["client"].get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="split-winner" data-variant="2"' in page and 'id="pick-winner"' not in page


def _events(env, campaign_id: int, variant: int, kind: str, count: int, in_test: bool = True):
    with db.write(env.engine) as conn:
        version = splittest.get(conn, campaign_id)["variants"][variant - 1]["version_id"]
        query = select(deliveries.c.subscriber_id).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.variant == variant)
        query = query.where(deliveries.c.test_group.is_(in_test))
        ids = list(conn.execute(query.order_by(deliveries.c.id).limit(count)).scalars())
    # an hour after delivery: not a link scanner's click within seconds of it
    record_events(env, [{
            "at": utcnow() + timedelta(hours=1), "kind": kind, "campaign_id": campaign_id,
            "subscriber_id": sid,
            "version_id": version, "link_index": 0 if kind == "click" else None,
            "machine": False, "reason": None, "user_agent": "test", "ip": "127.0.0.1"}
            for sid in ids])


def test_report_and_clickmap_per_variant_through_the_api(env, world):
    campaign_id = world["campaign_id"]
    _events(env, campaign_id, 1, "open", 3)
    _events(env, campaign_id, 2, "open", 4)
    _events(env, campaign_id, 2, "click", 2)
    _events(env, campaign_id, 2, "open", 5, in_test=False)     # the rest, who got the winner
    token = env.token("Manager")
    client = env.app.test_client()

    def get(path):
        response = client.get("/api/v1" + path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.get_json()
        return response.get_json()
    everyone = get(f"/campaigns/{campaign_id}/report")
    a = get(f"/campaigns/{campaign_id}/report?variant=1")
    b = get(f"/campaigns/{campaign_id}/report?variant=2")
    assert (everyone["delivered"], a["delivered"], b["delivered"]) == (20, 5, 15)
    assert (a["opens"]["human"], b["opens"]["human"], everyone["opens"]["human"]) == (3, 9, 12)
    assert (a["clicks"]["human"], b["clicks"]["human"]) == (0, 2)
    assert b["variant"] == 2 and everyone["variant"] is None
    clickmap = get(f"/campaigns/{campaign_id}/clickmap?variant=2")
    with db.read(env.engine) as conn:
        second_version = splittest.get(conn, campaign_id)["variants"][1]["version_id"]
    assert clickmap["version_id"] == second_version and clickmap["recipients"] == 15
    assert clickmap["links"][0]["unique_clicks"] == 2
    assert [(v["letter"], v["winner"]) for v in clickmap["variants"]] == [("A", False), ("B", True)]
    first = get(f"/campaigns/{campaign_id}/clickmap?variant=1")
    assert first["recipients"] == 5 and first["links"][0]["unique_clicks"] == 0
    test = get(f"/campaigns/{campaign_id}/split-test")
    assert [v["unique_clicks"] for v in test["variants"]] == [0, 2]    # the test portion only
    assert [v["unique_opens"] for v in test["variants"]] == [3, 4]


def test_report_pages_switch_between_variants(world):
    campaign_id = world["campaign_id"]
    report = world["client"].get(f"/reports/campaigns/{campaign_id}?variant=2").get_data(as_text=True)
    assert 'id="variant-form"' in report and 'value="2" selected' in report
    clickmap = world["client"].get(f"/reports/campaigns/{campaign_id}/clickmap?variant=1")
    html = clickmap.get_data(as_text=True)
    assert clickmap.status_code == 200 and 'id="variant-recipients"' in html
    frame = world["client"].get(f"/reports/campaigns/{campaign_id}/clickmap/frame?variant=2")
    assert frame.status_code == 200 and "ak-badge" in frame.get_data(as_text=True)


def test_an_unknown_variant_in_the_clickmap_api_is_named(env, world):
    token = env.token("Manager")
    response = env.app.test_client().get(
        f"/api/v1/campaigns/{world['campaign_id']}/clickmap?variant=4",
        headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "variant"


def test_the_live_progress_carries_the_variants_figures(world):
    plain = world["client"].get(f"/campaigns/{world['campaign_id']}/progress.json").get_json()
    assert plain["split"] is None and plain["stats"]["held"] == 0
    data = world["client"].get(f"/campaigns/{world['campaign_id']}/progress.json?split=1").get_json()
    assert data["split"]["state"] == "decided"
    assert [(v["variant"], v["recipients"]) for v in data["split"]["variants"]] == [(1, 5), (2, 5)]


def test_a_click_in_variant_b_goes_to_variant_bs_link(env, world, sink):
    message = next(m for m in sink.messages if str(m["Subject"]) == "Второе письмо")
    html = message.get_body(("html",)).get_content()
    marker = "/t/c/"
    token = html[html.index(marker) + len(marker):].split('"')[0]
    response = env.app.test_client().get(f"/t/c/{token}")
    BUFFER.flush()                      # the click's event, before the database goes away
    assert response.status_code == 302
    assert response.headers["Location"].startswith("https://shop.example.com/variant-b")
