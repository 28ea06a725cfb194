"""Double opt-in end to end in Chromium against the real `altkraft run` (its job worker sends
through aiosmtpd on 127.0.0.1): sign up on the hosted form (the browser solves the proof-of-work
robot check; the domain's MX is asked of a DNS server on 127.0.0.1), open the emailed link,
confirm."""
from __future__ import annotations

import base64
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
from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)
from tests.smtp_sink import SmtpSink

from .conftest import ACTOR

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(env, sink, dns_server):  # noqa: F811
    dns_server.serve({"example.com": {"MX": [(10, "mx.example.com")]},
                      "nomail.example.net": {"TXT": ["v=spf1 -all"]}})
    server = start_service(env, extra_env={
        "ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay()]),
        "ALTKRAFT_AUDIENCE__FROM_EMAIL": "hello@example.com",
        "ALTKRAFT_PUBLIC__CAPTCHA": "pow", "ALTKRAFT_PUBLIC__CHECK_MX": "true",
        "ALTKRAFT_DELIVERABILITY__NAMESERVERS": json.dumps([dns_server.address])})
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


def test_the_robot_check_is_solved_in_the_browser_and_used_once(env, service, page):
    """The widget solves the default challenge (the time it took is printed: the figure in
    docs/audience.md); the same solution sent again is refused; a domain without mail is
    refused by name."""
    with db.write(env.engine) as conn:
        list_id = lists.create_list(conn, ACTOR, "Daily " + uuid.uuid4().hex[:6],
                                    optin="single", visibility="public")
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{service.url}/p/subscribe/{list_id}")
    widget = page.locator("altcha-widget")
    started = page.evaluate("performance.now()")
    page.evaluate("document.querySelector('altcha-widget').verify()")
    expect(page.locator("input[name=altcha]")).to_have_value(re.compile(".+"), timeout=30000)
    elapsed = page.evaluate("performance.now()") - started
    payload = page.locator("input[name=altcha]").input_value()
    solved = json.loads(base64.b64decode(payload))
    print(f"\nPoW solved in Chromium: {solved['solution'].get('time')} ms of work, "
          f"{elapsed:.0f} ms until the form could be sent (counter {solved['solution']['counter']})")
    assert widget.count() == 1 and not [e for e in errors if "Content Security Policy" in e]
    email = f"pow-{uuid.uuid4().hex[:6]}@example.com"
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator("#public-result")).to_contain_text("you are subscribed")
    # the same solution again, as a replaying robot would send it
    again = page.request.post(f"{service.url}/p/subscribe/{list_id}",
                              form={"email": "x" + email, "altcha": payload})
    assert again.status == 422 and "robot check was not accepted" in again.text()
    page.goto(f"{service.url}/p/subscribe/{list_id}")
    page.get_by_label("Email").fill(f"pow-{uuid.uuid4().hex[:6]}@nomail.example.net")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("alert")).to_contain_text("nomail.example.net does not receive email")
    save_artifacts(page, "audience-captcha-mx-refused")


def test_without_javascript_the_form_says_what_is_needed(env, service, browser):
    with db.write(env.engine) as conn:
        list_id = lists.create_list(conn, ACTOR, "Plain " + uuid.uuid4().hex[:6],
                                    visibility="public")
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{service.url}/p/subscribe/{list_id}")
        expect(page.locator("#captcha-noscript")).to_contain_text("turn on JavaScript")
        page.get_by_label("Email").fill(f"nojs-{uuid.uuid4().hex[:6]}@example.com")
        page.get_by_role("button", name="Subscribe").click()
        expect(page.get_by_role("alert")).to_contain_text("complete the robot check")
    finally:
        context.close()
