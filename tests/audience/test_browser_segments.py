"""The condition builder in real Chromium against the real service: build a nested condition,
watch the live count change, save, and find the same JSON in the API."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.audience import segments
from tests.browser import save_artifacts
from tests.conftest import PASSWORD, start_service

from .conftest import People

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env)
    yield server
    server.stop()


def test_build_count_and_save_a_segment(env, service, page):
    people = People(env)
    tag = uuid.uuid4().hex[:6]
    list_id = people.list("Browser " + tag)
    people.add(f"de1-{tag}@example.com", [list_id], country="DE", city="Berlin")
    people.add(f"de2-{tag}@example.com", [list_id], country="DE", city="Bonn")
    people.add(f"fr-{tag}@example.com", [list_id], country="FR", city="Paris")
    admin = env.user("Administrator")
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(admin["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")

    page.goto(service.url + "/audience/segments/new")
    page.get_by_label("Name").fill("Germans " + tag)
    count = page.locator("#live-count")
    page.locator("button.add-list").first.click()
    page.locator("select.list-choice").select_option(str(list_id))
    expect(count).to_have_text("3")
    page.locator("button.add-rule").first.click()
    rule = page.locator(".rule").nth(1)
    rule.locator("select.field").select_option("country")
    rule.locator("select.value").select_option("DE")
    expect(count).to_have_text("2")
    page.locator("button.add-group").first.click()
    nested = page.locator(".group .group")
    nested.locator("select.field").first.select_option("city")
    nested.locator("select.operator").first.select_option("starts_with")
    nested.locator("input.value").first.fill("Ber")
    expect(count).to_have_text("1")
    save_artifacts(page, "audience-segment-builder")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url("**/audience/segments/*")
    with db.read(env.engine) as conn:
        saved = [s for s in segments.list_segments(conn) if s["name"] == "Germans " + tag][0]
        assert segments.count(conn, saved["conditions"]) == 1
    assert saved["conditions"]["rules"][0] == {"list": list_id, "operator": "member",
                                               "status": "confirmed"}
    assert saved["conditions"]["rules"][2]["rules"][0] == {"field": "city",
                                                           "operator": "starts_with",
                                                           "value": "Ber"}


def test_subscriber_page_shows_profile_lists_consent_and_timeline(env, service, page):
    people = People(env)
    tag = uuid.uuid4().hex[:6]
    list_id = people.list("Page " + tag)
    sid = people.add(f"page-{tag}@example.com", [list_id], first_name="Petra", country="AT",
                     timezone="Europe/Vienna")
    admin = env.user("Administrator")
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(admin["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")
    page.goto(f"{service.url}/audience/subscribers/{sid}")
    expect(page.locator("#profile")).to_contain_text("Petra")
    expect(page.locator("#memberships")).to_contain_text("Page " + tag)
    expect(page.locator("#consents")).to_contain_text("manual")
    expect(page.locator("#timeline")).to_contain_text("created")
    save_artifacts(page, "audience-subscriber-page")
