"""Deliverability page: sending domains with the DNS check results (a real DNS server on
127.0.0.1), "check again" (POST + CSRF, settings:manage), records ready to copy, the guide."""
from __future__ import annotations

import re

import pytest

from altkraft_onprem import db, tasks
from altkraft_onprem.app import create_app
from altkraft_onprem.delivery import dkimkeys
from tests.conftest import Env, csrf_token, fresh_database, make_settings
from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)

IP = "192.0.2.10"
HELO = "mail.example.com"


@pytest.fixture(scope="module")
def page_env(template_db, tmp_path_factory, dns_server):  # noqa: F811
    data_dir = tmp_path_factory.mktemp("deliverability")
    pem = dkimkeys.generate_private_pem()
    key_file = data_dir / "ak1.example.com.key"
    dkimkeys.write_private_key(key_file, pem)       # 0600: others may not read a key
    url, drop = fresh_database(template_db, data_dir)
    settings = make_settings(data_dir, url, **{
        "dkim.keys": [{"domain": "example.com", "selector": "ak1", "key_file": str(key_file)}],
        "smtp.relays": [{"host": "127.0.0.1", "helo": HELO}],
        "deliverability.sending_ips": [IP],
        "deliverability.nameservers": [dns_server.address]})
    engine = db.build_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    public = dkimkeys.public_key(pem).txt
    dns_server.serve({
        "10.2.0.192.in-addr.arpa": {"PTR": [HELO]},
        HELO: {"A": [IP]},
        "example.com": {"TXT": [f"v=spf1 ip4:{IP} -all"], "MX": [(10, HELO)]},
        "ak1._domainkey.example.com": {"TXT": [public]},
    })
    yield Env(settings, engine, app, data_dir, url), public
    engine.dispose()
    drop()


@pytest.fixture(scope="module")
def signed_in(page_env):
    """One signed-in test client per role for the module (password hashing is slow)."""
    env, _ = page_env
    clients = {}

    def login(role: str):
        if role not in clients:
            clients[role] = env.app.test_client()
            env.login(clients[role], env.user(role))
        return clients[role]
    return login


def test_page_lists_sending_domains_with_their_selectors(signed_in):
    html = signed_in("Viewer").get("/deliverability").get_data(as_text=True)
    assert 'id="domain-example.com"' in html
    assert "DKIM selectors: ak1" in html


def test_page_shows_the_dkim_record_ready_to_copy(signed_in, page_env):
    _, public = page_env
    html = signed_in("Viewer").get("/deliverability").get_data(as_text=True)
    line = dkimkeys.zone_line("ak1._domainkey.example.com", public)
    shown = re.search(r'data-dkim="ak1"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    assert shown == line.replace('"', "&#34;")


def test_page_has_the_fbl_and_ptr_guide(signed_in):
    html = signed_in("Viewer").get("/deliverability").get_data(as_text=True)
    assert "Feedback loops (FBL)" in html and "Reverse DNS (PTR) with your network team" in html


def test_viewer_sees_no_check_button(signed_in):
    html = signed_in("Viewer").get("/deliverability").get_data(as_text=True)
    assert 'id="check-all"' not in html


def test_viewer_may_not_run_the_checks(signed_in):
    client = signed_in("Viewer")
    token = csrf_token(client.get("/deliverability").get_data(as_text=True))
    assert client.post("/deliverability/check", data={"csrf_token": token}).status_code == 403


def test_check_without_csrf_token_is_refused(signed_in):
    assert signed_in("Administrator").post("/deliverability/check").status_code == 400


def test_check_again_shows_each_result_and_the_record_to_publish(signed_in):
    client = signed_in("Administrator")
    token = csrf_token(client.get("/deliverability").get_data(as_text=True))
    response = client.post("/deliverability/check", data={"csrf_token": token}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "DNS checked for 1 domain." in html
    for name in ("ptr", "spf", "dkim", "mx"):
        row = html.split(f'data-check="{name}"', 1)[1].split("</tr>", 1)[0]
        assert 'class="status pass"' in row, (name, row)
    dmarc = html.split('data-check="dmarc"', 1)[1].split("</tr>", 1)[0]
    assert 'class="status missing"' in dmarc and "no DMARC record at _dmarc.example.com" in dmarc
    fix = re.search(r'data-fix="dmarc"[^>]*>(.*?)</textarea>', dmarc, re.S).group(1)
    assert fix.startswith("_dmarc.example.com. IN TXT &#34;v=DMARC1; p=none;")


def test_page_without_login_redirects(page_env):
    env, _ = page_env
    assert env.app.test_client().get("/deliverability").status_code == 302
