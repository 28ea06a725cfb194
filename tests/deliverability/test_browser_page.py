"""The Deliverability page in real Chromium against the real service, with a HELO name that is
not a public host name ("localhost", what a fresh host's FQDN often is): the page says which
setting is missing, and offers no PTR or MX record that points at "localhost". Its FBL guide
says what complaints need today (the inbound receiver), not that they work by themselves."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from altkraft_installer import configfile
from altkraft_onprem.delivery import dkimkeys
from tests.browser import sign_in
from tests.conftest import start_service
from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

IP = "192.0.2.10"


@pytest.fixture(scope="module")
def service(env, dns_server):  # noqa: F811
    key_file = env.data_dir / "ak1.example.com.key"
    dkimkeys.write_private_key(key_file, dkimkeys.generate_private_pem())
    config = env.data_dir / "config.toml"
    config.write_text(configfile.render(
        {"deliverability.sending_ips": [IP], "deliverability.nameservers": [dns_server.address]},
        {"dkim.keys": [{"domain": "example.com", "selector": "ak1", "key_file": str(key_file)}],
         "smtp.relays": [{"host": "127.0.0.1", "helo": "localhost"}]}))
    # No PTR for the sending IP, no MX for the domain: both checks want a host name.
    dns_server.serve({"example.com": {"TXT": [f"v=spf1 ip4:{IP} -all"]}})
    server = start_service(env, extra_env={"ALTKRAFT_CONFIG": str(config)})
    yield server
    server.stop()


def test_a_helo_that_is_not_public_is_named_as_the_missing_setting(env, service, page):
    admin = env.user("Administrator")
    sign_in(page, service.url, admin)
    page.goto(service.url + "/deliverability")
    expect(page.locator("#helo-not-public")).to_contain_text(
        "Set helo of the SMTP relay (Settings, or [[smtp.relays]] in the config file) to the "
        "public name of the sending host")

    page.locator("#check-all").get_by_role("button", name="Check again").click()
    for check in ("ptr", "mx"):
        row = page.locator(f'tr[data-check="{check}"]')
        expect(row.locator(".status")).to_have_text("missing")
        expect(row).to_contain_text("the HELO name 'localhost' is not a public host name")
        expect(row).to_contain_text("set helo in [[smtp.relays]]")
        expect(row.locator("textarea")).to_have_count(0)
    assert "localhost." not in page.locator("table.checks").inner_text()


def test_the_fbl_guide_says_complaints_need_the_inbound_receiver(env, service, page):
    sign_in(page, service.url, env.user("Viewer"))
    page.goto(service.url + "/deliverability")
    guide = page.locator("#guide")
    expect(guide.locator("#fbl-address")).to_contain_text(
        "Complaints become suppressions only when the reports reach the appliance: altkraft "
        "inbound")
    expect(guide.locator("#fbl-address")).to_contain_text("[[inbound.imap]]")
    expect(guide).not_to_contain_text("become suppressions automatically")
