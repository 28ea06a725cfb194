"""In real Chromium against the real service: create a campaign, pick a list and a segment,
tick "start right now", watch the progress reach finished."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.audience import segments
from tests.browser import save_artifacts
from tests.campaigns.helpers import ACTOR, make_list, make_message, start_sending_service

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def service(env, sink):
    server = start_sending_service(env, sink, processes=2)
    yield server
    server.stop()


def test_create_pick_list_and_segment_start_now_and_watch_it_finish(env, service, sink, page):
    people = [{"email": f"riga{i}@example.org", "city": "Riga"} for i in range(4)] + \
             [{"email": f"oslo{i}@example.org", "city": "Oslo"} for i in range(2)]
    make_list(env, "Browser list", people)
    with db.write(env.engine) as conn:
        segments.create_segment(conn, ACTOR, "People in Riga", {
            "op": "and", "rules": [{"field": "city", "operator": "eq", "value": "Riga"}]})
    make_message(env)
    user = env.user("Manager")
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")

    page.goto(service.url + "/campaigns")
    page.locator("#new-campaign").click()
    form = page.locator("#campaign-form")
    form.get_by_label("Name", exact=True).fill("Browser campaign")
    form.get_by_label("Message").select_option(label="Sale")
    form.locator("fieldset").filter(has_text="Send to these lists").get_by_label("Browser list").check()
    form.get_by_label("People in Riga").check()
    form.get_by_label("From address").fill("news@example.com")
    form.get_by_label("From name").fill("News")
    form.get_by_label("Start the campaign right now (in addition to schedule)").check()
    form.get_by_role("button", name="Create campaign").click()

    expect(page.locator("#state")).to_have_attribute("data-state", "finished", timeout=60_000)
    expect(page.locator("#stat-sent")).to_have_text("4")
    expect(page.locator("#stat-remaining")).to_have_text("0")
    save_artifacts(page, "campaign_finished")
    assert sorted(sink.recipients()) == [f"riga{i}@example.org" for i in range(4)]
