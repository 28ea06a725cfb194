"""In real Chromium against the real service: build a three-step workflow in the builder
(update a field -> send an email -> goal), publish it, enroll a person and see the email
arrive at the SMTP sink."""
from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from tests.browser import save_artifacts, sign_in
from tests.campaigns.helpers import make_message, start_sending_service

from .helpers import fields_of, person

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def service(env, module_smtp_sink):
    server = start_sending_service(env, module_smtp_sink)
    yield server
    server.stop()


def add_step(page, kind: str, config: dict) -> None:
    page.get_by_label("Step type").select_option(kind)
    page.get_by_role("button", name="Add step").click()
    page.get_by_label("Step settings (JSON)").fill(json.dumps(config))
    page.get_by_role("button", name="Apply").click()


def connect(page, source: str, target: str) -> None:
    page.locator("#connect-from").select_option(source)
    page.locator("#connect-to").select_option(target)
    page.get_by_role("button", name="Connect", exact=True).click()


def test_build_publish_enroll_and_the_email_arrives(env, service, module_smtp_sink, page):
    message_id = make_message(env, html="<p>Hello {{ subscriber.first_name }}</p>", subject="From the builder")
    subscriber_id = person(env, first_name="Vera")
    email = fields_of(env, subscriber_id)["email"]
    sign_in(page, service.url, env.user("Administrator"))
    page.goto(service.url + "/automation")
    page.get_by_label("New workflow").fill("Builder flow")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#drawflow")).to_be_visible()

    add_step(page, "update_fields", {"fields": {"company": "builder"}})
    add_step(page, "send_email", {"message_id": message_id, "from_email": "news@example.com"})
    add_step(page, "goal", {"name": "mailed"})
    expect(page.locator(".drawflow-node")).to_have_count(3)
    connect(page, "update_fields1", "send_email2")
    connect(page, "send_email2", "goal3")
    expect(page.locator(".drawflow .connection")).to_have_count(2)

    page.get_by_role("button", name="Save and publish").click()
    expect(page.locator("#workflow-version")).to_have_text("1")
    save_artifacts(page, "automation-builder-published")

    page.get_by_label("Enroll (emails or ids)").fill(email)
    page.get_by_role("button", name="Enroll", exact=True).click()
    expect(page.locator(".flash, .notice, [role=status]").first).to_be_visible()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not module_smtp_sink.by_recipient(email):
        time.sleep(0.2)
    (message,) = module_smtp_sink.by_recipient(email)
    assert message["Subject"] == "From the builder"
    assert fields_of(env, subscriber_id)["company"] == "builder"
    page.reload()
    expect(page.locator("#enrollments")).to_contain_text("reached the end")
