"""Double opt-in end to end in Chromium against the real `altkraft run` (its job worker sends
through aiosmtpd on 127.0.0.1): sign up on the hosted form, open the emailed link, confirm."""
from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.audience import lists, subscribers
from tests.browser import save_artifacts
from tests.conftest import start_service
from tests.smtp_sink import SmtpSink

from .conftest import ACTOR

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(env, sink):
    server = start_service(env, extra_env={
        "ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay()]),
        "ALTKRAFT_AUDIENCE__FROM_EMAIL": "hello@example.com"})
    yield server
    server.stop()


def wait_for_mail(sink, email: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = sink.by_recipient(email)
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no confirmation email for {email}")


def test_hosted_form_to_confirmed_subscriber(env, service, sink, page):
    with db.write(env.engine) as conn:
        list_id = lists.create_list(conn, ACTOR, "Weekly " + uuid.uuid4().hex[:6],
                                    optin="double", visibility="public")
    email = f"web-{uuid.uuid4().hex[:6]}@example.com"
    page.goto(f"{service.url}/p/subscribe/{list_id}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("First name").fill("Wendy")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("#public-result")).to_contain_text("check your inbox")
    message = wait_for_mail(sink, email)
    html = message.get_body(("html",)).get_content()
    link = re.search(r'href="([^"]+/p/confirm/[^"]+)"', html).group(1).replace("&amp;", "&")
    page.goto(link)
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.locator("#public-result")).to_contain_text("confirmed")
    save_artifacts(page, "audience-doi-confirmed")
    with db.read(env.engine) as conn:
        person = subscribers.find_by_email(conn, email)
    assert person["first_name"] == "Wendy"
    assert [m["status"] for m in person["lists"]] == ["confirmed"]
    assert page.context.cookies() == []
