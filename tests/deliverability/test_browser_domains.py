"""Settings -> Sending domains in Chromium against the real service: an administrator adds a
domain typed the way people type it, publishes the record the page shows (in a real DNS server
on 127.0.0.1), starts signing, rotates the key — by keyboard, at 390 px wide."""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.browser import sign_in
from tests.conftest import start_service

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def service(env, dns_server):
    server = start_service(env, extra_env={
        "ALTKRAFT_DELIVERABILITY__NAMESERVERS": json.dumps([dns_server.address])})
    yield server
    server.stop()


@pytest.fixture()
def browser_context_args() -> dict:
    return {"locale": "en-US", "viewport": {"width": 390, "height": 844}}


def _publish(page, dns_server) -> None:
    """Serves every record the page asks to publish (what IT would paste into the zone)."""
    zone = {}
    for area in page.locator("textarea.record").all():
        name, _, rest = area.input_value().partition(". IN TXT ")
        zone[name] = {"TXT": ["".join(part.strip('"') for part in
                                      rest.strip("() ").split('" "'))]}
    dns_server.serve(zone)


def test_add_a_domain_start_signing_and_rotate_its_key(env, service, page, dns_server):
    sign_in(page, service.url, env.user("Administrator"))
    page.goto(service.url + "/settings")
    form = page.locator("#add-domain")
    form.get_by_label("Domain (as in the From address)").fill("Shop.Example.COM.")
    form.get_by_label("Domain (as in the From address)").press("Enter")

    expect(page.locator("#domain-name")).to_have_text("shop.example.com")
    key = page.locator(".key")
    expect(key).to_have_count(1)
    expect(key).to_have_attribute("data-state", "pending")
    expect(key.locator("textarea.record")).to_have_value(
        re.compile(r"^ak\d{8}\._domainkey\.shop\.example\.com\. IN TXT "))

    _publish(page, dns_server)
    button = page.get_by_role("button", name="I published it: check DNS and start signing")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator('.key[data-state="active"]')).to_have_count(1)
    first = page.locator('.key[data-state="active"]').get_attribute("data-selector")

    page.get_by_role("button", name="Rotate: make a new key").click()
    expect(page.locator('.key[data-state="pending"]')).to_have_count(1)
    expect(page.locator(f'.key[data-selector="{first}"]')).to_have_attribute("data-state", "active")
    _publish(page, dns_server)
    page.get_by_role("button", name="I published it: check DNS and start signing").click()
    expect(page.locator(f'.key[data-selector="{first}"]')).to_have_attribute("data-state", "retiring")
    expect(page.locator('.key[data-state="active"]')).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_activating_before_the_record_is_published_says_what_to_publish(env, service, page,
                                                                         dns_server):
    dns_server.serve({})
    sign_in(page, service.url, env.user("Administrator"))
    page.goto(service.url + "/settings")
    page.get_by_label("Domain (as in the From address)").fill("early.example.com")
    page.get_by_role("button", name="Add domain").click()
    page.get_by_role("button", name="I published it: check DNS and start signing").click()
    expect(page.locator("#domain-error")).to_contain_text("._domainkey.early.example.com is not "
                                                          "published yet")
