"""The Inbound mail page in real Chromium, against the real service and the real receiver
(`altkraft inbound` as its own process): a DSN for a dead address arrives over SMTP, the job
consumer of `altkraft run` applies it, and an administrator finds it, opens the raw message,
reclassifies it and unsuppresses the address — by keyboard, and at 390 px wide."""
from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time

import pytest
from playwright.sync_api import expect

from tests.browser import sign_in
from tests.conftest import QUEUE_KIND, REDIS_URL, free_port, start_service
from tests.inbound import reports
from tests.inbound.conftest import BOUNCE_DOMAIN, inbound_settings, send_campaign

pytestmark = pytest.mark.browser
PEOPLE = [{"email": "gone@example.net"}, {"email": "here@example.net"}]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink)
    sent = send_campaign(env, settings, PEOPLE, "Browser inbound")
    extra = {"ALTKRAFT_DELIVERY__BOUNCE_DOMAIN": BOUNCE_DOMAIN}
    service = start_service(env, extra_env=extra)
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update(extra, ALTKRAFT_DATA_DIR=str(env.data_dir), ALTKRAFT_DATABASE__URL=env.database_url,
                       ALTKRAFT_QUEUE__BACKEND=QUEUE_KIND, ALTKRAFT_QUEUE__REDIS_URL=REDIS_URL,
                       ALTKRAFT_QUEUE__NAME=env.settings["queue.name"],
                       ALTKRAFT_INBOUND__SMTP_LISTEN=f"127.0.0.1:{port}")
    receiver = subprocess.Popen([sys.executable, "-m", "altkraft_onprem.cli", "inbound"],
                                env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            client = smtplib.SMTP("127.0.0.1", port, timeout=5)
            break
        except OSError:
            assert receiver.poll() is None and time.monotonic() < deadline, receiver.stderr.read()
            time.sleep(0.1)
    message = sink.by_recipient("gone@example.net")[0]
    with client:
        client.sendmail("", [message.envelope_from], reports.dsn(message.raw, recipient="gone@example.net"))
    yield {**sent, "service": service, "settings": settings}
    receiver.terminate()
    assert receiver.wait(15) == 0
    service.stop()


@pytest.fixture()
def browser_context_args() -> dict:
    return {"locale": "en-US", "viewport": {"width": 390, "height": 844}}


def test_the_bounce_is_found_reclassified_and_unsuppressed_by_keyboard(env, world, page):
    url = world["service"].url
    sign_in(page, url, env.user("Administrator"))
    page.goto(url + "/deliverability")
    page.locator("#inbound-link").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/deliverability/inbound")
    row = page.locator("#bounces tbody tr").filter(has_text="gone@example.net")
    for _ in range(100):          # the job consumer applies it within a moment
        if row.count():
            break
        time.sleep(0.2)
        page.reload()
    expect(row).to_contain_text("hard")
    expect(row).to_contain_text("5.1.1")
    expect(row).to_contain_text("suppressed")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1   # no page-wide sideways scroll

    row.get_by_label("New class").select_option("soft")
    row.get_by_role("button", name="Reclassify").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_contain_text("is now soft")

    row = page.locator("#bounces tbody tr").filter(has_text="gone@example.net")
    row.get_by_role("button", name="Unsuppress").focus()
    page.keyboard.press("Enter")
    expect(page.locator(".flash")).to_contain_text("gone@example.net may receive mail again")

    row = page.locator("#bounces tbody tr").filter(has_text="gone@example.net")
    row.get_by_role("link", name="message").click()
    expect(page.locator("#raw pre")).to_contain_text("Diagnostic-Code: smtp; 550 5.1.1")
