"""In real Chromium against the real service: the new-campaign form's Local time part — a
time of day, the zone for people without one, quiet hours — and the campaign page's zones
still to come."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from altkraft_onprem.db.types import utcnow
from tests.browser import save_artifacts
from tests.campaigns.helpers import make_list, make_message

pytestmark = pytest.mark.browser


def test_a_local_time_campaign_from_the_form_waits_for_its_zones(env, service, sink, page):
    people = [{"email": f"honolulu{i}@example.org", "timezone": "Pacific/Honolulu"} for i in range(2)] + \
             [{"email": f"tokyo{i}@example.org", "country": "JP"} for i in range(3)]
    make_list(env, "Local browser list", people)
    make_message(env)
    user = env.user("Manager")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")

    page.goto(service.url + "/campaigns/new")
    form = page.locator("#campaign-form")
    form.get_by_label("Name", exact=True).fill("Local browser campaign")
    form.get_by_label("Message").select_option(label="Sale")
    form.locator("fieldset").filter(has_text="Send to these lists").get_by_label("Local browser list").check()
    form.get_by_label("From address").fill("news@example.com")
    local = form.locator("#local-time")
    local.get_by_label("Deliver at one time of day in each subscriber's own zone").check()
    # A time still to come in both zones (Honolulu: in about two hours; Tokyo, five hours
    # behind Honolulu's clock: in about seven), never within the hour after it passed (that
    # would be sent at once) nor in the quiet hours.
    honolulu = (utcnow().hour - 10) % 24
    at = (honolulu + 2) % 24
    at = at if 8 <= at < 21 else 12
    local.get_by_label("Local time of day").fill(f"{at:02d}:30")
    local.get_by_label("Zone for subscribers without one").fill("Europe/Riga")
    form.get_by_label("Start the campaign right now (in addition to schedule)").check()
    form.get_by_role("button", name="Create campaign").click()

    expect(page.locator("#state")).to_have_attribute("data-state", "running", timeout=30_000)
    section = page.locator("#local-time")
    expect(section).to_contain_text(f"{at:02d}:30")
    expect(section).to_contain_text("Europe/Riga")
    expect(section).to_contain_text("21:00–08:00")
    zones = page.locator("#zones-to-come")
    for zone in ("Pacific/Honolulu", "Asia/Tokyo"):
        expect(zones).to_contain_text(zone)
    save_artifacts(page, "local_time_campaign")
    assert sink.recipients() == [] or all(not r.startswith(("honolulu", "tokyo")) for r in sink.recipients())
