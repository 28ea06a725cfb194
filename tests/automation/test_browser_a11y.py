"""The automation pages in real Chromium: axe-core's WCAG 2.1 A and AA rules find nothing on
the workflow list, the builder (with steps, counters, people waiting and one stopped), the
webhook list and a webhook's delivery log, at 1366 px and at 390 px (where nothing scrolls
sideways), in English and in Russian; and the builder's whole job can be done with the keyboard alone."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.automation import webhooks, workflows
from altkraft_onprem.automation.workflow_models import enrollments
from tests.a11y import DESKTOP, PHONE, axe_violations, describe, settled, sideways
from tests.browser import save_artifacts, sign_in

from .helpers import ACTOR, chain, enroll, person, published, run_later

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def pages(env, live_server):
    """A published workflow with people in it (one waiting, one stopped) and a webhook with a
    delivery: the URLs of the four pages."""
    workflow_id = published(env, chain(
        ("hello", "update_fields", {"fields": {"company": "a11y"}}),
        ("pause", "wait", {"duration": "P2D"}),
        ("check", "condition", {"conditions": {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": "Riga"}]}}),
        ("won", "goal", {"name": "converted"}),
        edges=[{"from": "hello", "to": "pause"}, {"from": "pause", "to": "check"},
               {"from": "check", "to": "won", "branch": "yes"}], name="Accessible flow"))
    waiting, stopped = person(env, timezone="Europe/Riga"), person(env)
    enroll(env, workflow_id, waiting, stopped)
    run_later(env, 0)
    with db.write(env.engine) as conn:
        conn.execute(update(enrollments).where(enrollments.c.subscriber_id == stopped).values(
            state="parked", end_reason="node pause failed: an example"))
        hook = webhooks.create(conn, ACTOR, env.settings, url="https://hooks.example.com/a11y",
                               events=["subscriber.created"], description="CRM")
    person(env)                 # one delivery in the log (it fails: the host does not resolve)
    base = live_server.url
    return {"list": f"{base}/automation", "builder": f"{base}/automation/workflows/{workflow_id}",
            "webhooks": f"{base}/automation/webhooks",
            "webhook": f"{base}/automation/webhooks/{hook['id']}"}


@pytest.mark.parametrize(("size", "locale"), [(DESKTOP, "en"), (PHONE, "en"), (PHONE, "ru")])
def test_the_automation_pages_have_no_axe_violations(env, pages, new_page, size, locale):
    page = new_page(viewport=size)
    user = env.user("Administrator")
    with db.write(env.engine) as conn:          # the pages in the user's language
        access.update_user(conn, system_actor(), user["id"], locale=locale)
    sign_in(page, pages["list"].rsplit("/automation", 1)[0], user)
    found = {}
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("networkidle")
        settled(page)
        assert page.locator("html").get_attribute("lang") == locale
        problems = describe(axe_violations(page))
        wider = sideways(page)
        if problems or wider:
            found[name] = problems + (f"; scrolls sideways by {wider}px" if wider else "")
            save_artifacts(page, f"automation-a11y-{name}-{size['width']}-{locale}")
    assert not found, found


def test_the_builder_works_with_the_keyboard_alone(env, live_server, page):
    """Every builder action by keys on the focused control (no pointer): name, trigger, a
    step added, configured, connected and disconnected, the draft saved and published."""
    sign_in(page, live_server.url, env.user("Administrator"))
    page.goto(live_server.url + "/automation")
    page.get_by_label("New workflow").focus()
    page.keyboard.type("Keyboard flow")
    page.keyboard.press("Enter")
    expect(page.locator("#drawflow")).to_be_visible()

    def choose(control_id: str, value: str) -> None:
        control = page.locator(f"#{control_id}")
        control.focus()
        control.select_option(value)        # what arrow keys do to a focused <select>

    def press(name: str) -> None:
        page.get_by_role("button", name=name, exact=True).focus()
        page.keyboard.press("Enter")

    for kind, config in (("update_fields", '{"fields": {"company": "keys"}}'),
                         ("goal", '{"name": "typed"}')):
        choose("node-type", kind)
        press("Add step")
        settings = page.get_by_label("Step settings (JSON)")
        expect(settings).to_be_focused()
        settings.press("Control+a")
        page.keyboard.type(config)
        press("Apply")
    choose("connect-from", "update_fields1")
    choose("connect-to", "goal2")
    press("Connect")
    expect(page.locator(".drawflow .connection")).to_have_count(1)
    press("Disconnect")
    expect(page.locator(".drawflow .connection")).to_have_count(0)
    press("Connect")
    expect(page.locator(".drawflow .connection")).to_have_count(1)
    press("Save draft")
    expect(page.locator("#builder-status")).to_have_text("Saved.")
    press("Save and publish")
    expect(page.locator("#workflow-version")).to_have_text("1")
    with db.read(env.engine) as conn:
        found = [w for w in workflows.list_workflows(conn) if w["name"] == "Keyboard flow"]
    assert found and found[0]["state"] == "active"
    assert [n["type"] for n in found[0]["draft"]["graph"]["nodes"]] == ["update_fields", "goal"]
    assert found[0]["draft"]["graph"]["edges"] == [{"from": "update_fields1", "to": "goal2"}]
