"""A newcomer's way through the campaign pages, in real Chromium against the real service on a
fresh database: the first administrator's last login is shown, the dashboard's first steps
name a list and a first campaign, a finished campaign shows a full progress bar and links to
its report and clickmap, the clickmap renders the message for a placeholder recipient with the
campaign's list, and counts take their plural form.

The tests are steps of one journey and run in file order (each uses what the one before made).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from tests.browser import save_artifacts, sign_in
from tests.campaigns.helpers import make_campaign, make_list, make_message

pytestmark = pytest.mark.browser

ADMIN = {"name": "Nina Newcomer", "email": "nina@example.com", "password": "first admin pass 1"}
HTML = """<html><body>
<p id="greeting">Hello {{ subscriber.first_name }}, you get this as a member of {{ list.name }}.</p>
<p id="promo">Your code: {{ data.promo | default('none') }}</p>
<p><a href="https://shop.example.com/sale">Sale</a></p>
</body></html>"""


@pytest.fixture(scope="module")
def journey() -> dict:
    return {}


def test_the_first_administrator_sees_their_own_last_login(env, service, page):
    link = re.search(r"create the administrator at (\S+/setup/\S+)", service.log.read_text()).group(1)
    page.goto(link)
    page.get_by_label("Name").fill(ADMIN["name"])
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password (at least 10 characters)").fill(ADMIN["password"])
    page.get_by_label("Password again").fill(ADMIN["password"])
    page.get_by_role("button", name="Create administrator").click()
    page.wait_for_url(service.url + "/")
    page.goto(service.url + "/users")
    row = page.locator("tr", has_text=ADMIN["email"])
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$"))


def test_signing_in_again_moves_the_last_login(env, service, page):
    with db.read(env.engine) as conn:
        before = access.get_user(conn, access.user_id_by_email(conn, ADMIN["email"]))["last_login_at"]
    sign_in(page, service.url, ADMIN)
    with db.read(env.engine) as conn:
        after = access.get_user(conn, access.user_id_by_email(conn, ADMIN["email"]))["last_login_at"]
    assert after > before


def test_the_first_steps_name_a_list_and_a_first_campaign(service, page):
    sign_in(page, service.url, ADMIN)
    steps = page.locator(".getting-started ol li")
    expect(steps.nth(0)).to_contain_text("Create a list and add subscribers")
    expect(page.locator("#step-campaign")).to_contain_text("Send your first campaign")
    page.locator("#step-campaign a").click()
    expect(page).to_have_url(service.url + "/campaigns/new")


def test_a_finished_campaign_has_a_full_bar_and_links_to_its_report(env, service, page, journey):
    list_id, _ = make_list(env, "Readers", [{"email": "reader@example.org", "first_name": "Vera"}])
    journey["campaign"] = make_campaign(env, make_message(env, html=HTML, subject="Hello"), [list_id])
    sign_in(page, service.url, ADMIN)
    page.goto(f"{service.url}/campaigns/{journey['campaign']}")
    page.locator("#action-start").click()
    expect(page.locator("#state")).to_have_attribute("data-state", "finished", timeout=60_000)

    bar = page.locator("#bar")
    assert bar.evaluate("b => b.value === b.max") is True
    card = page.locator("#progress").bounding_box()
    assert bar.bounding_box()["width"] > 0.7 * card["width"]        # a bar, not a 160 px stub
    expect(page.locator("#bar-percent")).to_have_text("100% done")
    expect(page.locator("#report-link")).to_be_visible()
    expect(page.locator("#clickmap-link")).to_be_visible()
    save_artifacts(page, "campaign_finished_without_split_test")


def test_the_clickmap_shows_a_placeholder_reader_of_the_campaigns_list(service, page, journey):
    sign_in(page, service.url, ADMIN)
    page.goto(f"{service.url}/campaigns/{journey['campaign']}")
    page.locator("#clickmap-link").click()
    frame = page.frame_locator("#clickmap-frame")
    expect(frame.locator("#greeting")).to_have_text(
        "Hello [subscriber.first_name], you get this as a member of Readers.")
    expect(frame.locator("#promo")).to_have_text("Your code: [data.promo]")
    expect(frame.locator(".ak-badge")).to_have_count(1)
    expect(page.locator("#placeholder-note")).to_contain_text("[subscriber.first_name]")


def test_counts_take_their_plural_form(service, page):
    sign_in(page, service.url, ADMIN)
    page.goto(service.url + "/audience/subscribers")
    expect(page.locator("#total")).to_have_text("1 subscriber")
    page.goto(service.url + "/audience/")
    page.get_by_role("link", name="Readers").click()
    expect(page.locator("#counts")).to_contain_text("1 confirmed member")
    expect(page.locator("#counts")).to_contain_text("0 unconfirmed members")
