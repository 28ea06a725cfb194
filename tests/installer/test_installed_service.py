"""The whole path, in real Chromium: `altkraft-install install --root`, `dkim generate`, the real
`altkraft run` on the installed config and database, the installer's setup link creates the
administrator, and the Deliverability page checks DNS (a real DNS server) with "Check again".
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner
from playwright.sync_api import expect

from altkraft_installer.cli import cli
from altkraft_onprem.delivery import dkimkeys
from tests.browser import save_artifacts
from tests.conftest import QUEUE_KIND, REDIS_URL, free_port

pytestmark = pytest.mark.browser
IP = "192.0.2.10"
HELO = "mail.example.com"
ADMIN = {"email": "it@example.com", "password": "installed admin 1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory, module_database_url, dns_server):
    database_url = module_database_url
    root = tmp_path_factory.mktemp("e2e") / "root"
    port = free_port()
    args = ["install", "--root", str(root), "--yes", "--public-url", f"http://127.0.0.1:{port}",
            "--bind", f"127.0.0.1:{port}", "--helo", HELO, "--smtp-host", "127.0.0.1",
            "--smtp-port", "2525", "--smtp-security", "none"]
    if database_url:
        args += ["--database-url", database_url]
    if QUEUE_KIND == "redis":
        args += ["--queue-backend", "redis", "--redis-url", REDIS_URL]
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    assert runner.invoke(cli, ["dkim", "generate", "--domain", "example.com", "--selector", "ak1",
                               "--root", str(root)]).exit_code == 0
    key_file = root / "etc/altkraft/dkim/ak1.example.com.key"
    dns_server.serve({
        "10.2.0.192.in-addr.arpa": {"PTR": [HELO]}, HELO: {"A": [IP]},
        "example.com": {"TXT": [f"v=spf1 ip4:{IP} -all"], "MX": [(10, HELO)]},
        "ak1._domainkey.example.com": {"TXT": [dkimkeys.public_key(key_file.read_bytes()).txt]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject"]},
    })
    # The staged tree names live paths (/var/lib/altkraft, /etc/altkraft/…): point them into it.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update({
        "ALTKRAFT_DATA_DIR": str(root / "var/lib/altkraft"),
        "ALTKRAFT_SECRET_KEY_FILE": str(root / "etc/altkraft/secret_key"),
        "ALTKRAFT_DKIM__KEYS": json.dumps([{"domain": "example.com", "selector": "ak1",
                                            "key_file": str(key_file)}]),
        "ALTKRAFT_DELIVERABILITY__NAMESERVERS": json.dumps([dns_server.address]),
        "ALTKRAFT_DELIVERABILITY__SENDING_IPS": json.dumps([IP]),
        "ALTKRAFT_SERVER__WORKERS": "1", "ALTKRAFT_QUEUE__WORKERS": "1",
        "ALTKRAFT_QUEUE__WORKER_TYPE": "thread",
        "ALTKRAFT_QUEUE__NAME": f"aktest-e2e-{os.getpid()}",
    })
    log = root.parent / "service.log"
    process = subprocess.Popen([sys.executable, "-m", "altkraft_onprem.cli", "--config",
                                str(root / "etc/altkraft/config.toml"), "run"],
                               stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=environment,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    # The service replaced the setup token when it started; installing again (as the live
    # installer does once the service listens) prints a fresh link and changes nothing else.
    again = runner.invoke(cli, args)
    assert "nothing to change" in again.output
    link = re.search(r"Create the first administrator at: (\S+)", again.output).group(1)
    yield {"url": url, "link": link}
    process.terminate()
    process.wait(60)


def test_setup_link_from_the_installer_creates_the_administrator(installed, page):
    page.goto(installed["link"])
    page.get_by_label("Name").fill("IT")
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password (at least 10 characters)").fill(ADMIN["password"])
    page.get_by_label("Password again").fill(ADMIN["password"])
    page.get_by_role("button", name="Create administrator").click()
    page.wait_for_url(installed["url"] + "/")


def test_deliverability_page_checks_the_installed_domain(installed, page):
    page.goto(installed["url"] + "/login")
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(installed["url"] + "/")
    page.locator("nav.mainnav a", has_text="Deliverability").click()
    page.wait_for_url(installed["url"] + "/deliverability")
    assert "Not checked yet." in page.locator("#domain-example\\.com").inner_text()
    page.locator("#check-all button").click()
    page.wait_for_url(installed["url"] + "/deliverability")
    save_artifacts(page, "deliverability-checked")
    statuses = {row.get_attribute("data-check"): row.locator(".status").inner_text()
                for row in page.locator("tr[data-check]").all()}
    assert statuses == {"ptr": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass", "mx": "pass",
                        "mta_sts": "missing", "tls_rpt": "missing", "blocklist": "pass"}


def test_records_have_a_copy_button(installed, page):
    page.goto(installed["url"] + "/login")
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password").fill(ADMIN["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(installed["url"] + "/")
    page.goto(installed["url"] + "/deliverability")
    button = page.locator("textarea[data-dkim=ak1] + button.copy")
    assert button.inner_text() == "Copy"
    button.click()
    expect(button).to_have_text("Copied")     # the clipboard write is asynchronous
