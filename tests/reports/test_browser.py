"""Reports in real Chromium against the running service: the clickmap of a sent campaign with
its version switch and badges (clicks made through the real tracking endpoint), and the cohort
and engagement charts drawn by Chart.js (screenshots saved under test-artifacts/)."""
from __future__ import annotations

import time

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.tracking import tokens
from altkraft_onprem.tracking.models import tracking_events
from tests.browser import save_artifacts
from tests.conftest import start_service

from .conftest import add_list, add_subscriber, deliver, event, make_campaign

pytestmark = pytest.mark.browser

V1 = ('<html><body><h1>Spring sale</h1><p><a href="https://shop.example/sale">See the sale</a></p>'
      '<p><a href="https://shop.example/new">New arrivals</a></p></body></html>')
V2 = '<html><body><h1>Spring sale (v2)</h1><p><a href="https://shop.example/v2">Only link</a></p></body></html>'
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        list_id = add_list(conn, "browser list")
        people = [add_subscriber(conn, f"b{n}@browser.example", f"2026-0{1 + n % 3}-10 10:00", "form", [list_id])
                  for n in range(4)]
        campaign = make_campaign(conn, "Spring sale", V1, list_id, extra_versions=(V2,))
        for person in people:
            deliver(conn, campaign["id"], person, done="2026-04-01 09:00")
        for n, person in enumerate(people):
            event(conn, "open", person, f"2026-0{2 + n % 3}-15 10:00", campaign_id=campaign["id"],
                  version_id=campaign["version_ids"][0])
    admin = env.user("Administrator")
    return {"campaign": campaign, "people": people, "admin": admin}


@pytest.fixture(scope="module")
def service(env, world):
    server = start_service(env, "--no-consumer", extra_env={
        "ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "100",
        # Reading-time classes other than the defaults: the report must state these.
        "ALTKRAFT_TRACKING__GLANCE_SECONDS": "3", "ALTKRAFT_TRACKING__READ_SECONDS": "10.5"})
    settings = env.settings.replace(server__public_url=server.url)
    c = world["campaign"]
    v1, v2 = c["version_ids"]
    clicks = [(0, v1, 0), (0, v1, 0), (1, v1, 0), (1, v1, 1), (2, v2, 0)]     # (person, version, link)
    for person, version, link in clicks:
        url = tokens.click_url(settings, c["id"], world["people"][person], version, link)
        assert requests.get(url, allow_redirects=False, timeout=5,
                            headers={"User-Agent": BROWSER_UA}).status_code == 302
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with db.read(env.engine) as conn:
            if conn.execute(select(func.count()).select_from(tracking_events).where(
                    tracking_events.c.kind == "click")).scalar() == len(clicks):
                break
        time.sleep(0.1)
    yield server
    server.stop()


@pytest.fixture()
def signed_in(page, service, world):
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(world["admin"]["email"])
    page.get_by_label("Password").fill(world["admin"]["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")
    return page


def test_the_report_states_the_reading_time_classes_that_are_set(signed_in, service, world):
    signed_in.goto(f"{service.url}/reports/campaigns/{world['campaign']['id']}")
    expect(signed_in.locator("#read-classes")).to_contain_text(
        "Glanced < 3 s, skimmed 3–10.5 s, read ≥ 10.5 s")


def test_clickmap_shows_badges_and_switches_versions(signed_in, service, world):
    page = signed_in
    page.goto(f"{service.url}/reports/campaigns/{world['campaign']['id']}/clickmap")
    frame = page.frame_locator("#clickmap-frame")
    badges = frame.locator(".ak-badge")
    badges.first.wait_for()
    # version 1: 4 recipients; "sale" clicked by 2 people 3 times, "new" by 1 person once
    assert badges.all_inner_texts() == ["50.0% · 3", "25.0% · 1"]
    save_artifacts(page, "reports-clickmap-v1")
    page.locator("#version").select_option("2")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**version=2**")
    frame = page.frame_locator("#clickmap-frame")
    frame.locator(".ak-badge").first.wait_for()
    assert frame.locator(".ak-badge").all_inner_texts() == ["100.0% · 1"]
    assert "Spring sale (v2)" in frame.locator("h1").inner_text()
    save_artifacts(page, "reports-clickmap-v2")


def test_cohort_heatmap_and_chart_render(signed_in, service, world):
    page = signed_in
    page.goto(f"{service.url}/reports/cohorts")
    page.locator("canvas[data-chart='cohorts'][data-rendered='1']").wait_for()
    assert page.locator("#heatmap td.cell").count() >= 3 * 12
    png = save_artifacts(page, "reports-cohorts")
    assert png.stat().st_size > 10_000


def test_cohort_cell_becomes_a_segment(signed_in, service, world):
    page = signed_in
    page.goto(f"{service.url}/reports/cohorts")
    page.locator("#heatmap td.cell a").first.click()
    page.get_by_role("button", name="Create segment").click()
    assert "created" in page.locator(".flash").inner_text()


def test_engagement_chart_renders(signed_in, service, world):
    page = signed_in
    page.goto(f"{service.url}/reports/engagement?period=month&since=2026-01-01&until=2026-04-30")
    page.locator("canvas[data-chart='engagement'][data-rendered='1']").wait_for()
    rows = page.locator("#engagement-table tbody tr").all_inner_texts()
    assert [r.split("\t")[:2] for r in rows] == [["2026-01-01", "2"], ["2026-02-01", "1"], ["2026-03-01", "1"],
                                                  ["2026-04-01", "0"]]
    png = save_artifacts(page, "reports-engagement")
    assert png.stat().st_size > 10_000


def test_campaign_report_charts_render(signed_in, service, world):
    page = signed_in
    page.goto(f"{service.url}/reports/campaigns/{world['campaign']['id']}")
    for name in ("timeline", "clients", "devices"):
        page.locator(f"canvas[data-chart='{name}'][data-rendered='1']").wait_for()
    # No open was timed (no reading-time class): that chart says so instead of an empty ring.
    expect(page.locator(".chart-empty[data-chart='reads']")).to_have_text("No data yet.")
    assert "Delivered" in page.locator("#figures").inner_text()
    save_artifacts(page, "reports-campaign")
