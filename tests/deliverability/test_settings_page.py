"""The Settings area: settings:manage only, every change audited, values layered over the config
file (no restart), secrets and listen addresses only in the file, relays with their limits."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.access.audit import audit_entries
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.config import current_settings
from altkraft_onprem.deliverability import settings_store
from altkraft_onprem.errors import ServiceError
from tests.conftest import csrf_token


@pytest.fixture(scope="module")
def signed_in(env):
    clients = {}

    def login(role: str):
        if role not in clients:
            clients[role] = env.app.test_client()
            env.login(clients[role], env.user(role))
        return clients[role]
    return login


def _post(client, path: str, data: dict, **kwargs):
    token = csrf_token(client.get("/settings").get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


def _in_force(env):
    settings_store.invalidate()
    with env.app.app_context():
        return current_settings()


@pytest.mark.parametrize("role", ["Manager", "Editor", "Viewer"])
def test_only_settings_manage_opens_the_settings(signed_in, role):
    assert signed_in(role).get("/settings").status_code == 403


def test_the_menu_leads_to_the_settings_page(signed_in):
    html = signed_in("Administrator").get("/").get_data(as_text=True)
    assert 'href="/settings"' in html


def test_the_page_says_which_settings_only_the_config_file_sets(signed_in):
    html = signed_in("Administrator").get("/settings").get_data(as_text=True)
    for key in ("server.bind", "inbound.smtp_listen", "database.url", "secret_key_file"):
        assert f'data-file-only="{key}"' in html
    database = html.split('data-file-only="database.url"', 1)[1].split("</tr>", 1)[0]
    assert "set (not shown)" in database and "sqlite" not in database


def test_a_default_set_here_is_in_force_at_once_and_audited(signed_in, env):
    client = signed_in("Administrator")
    response = _post(client, "/settings/values", {
        "group": "sender", "audience.from_email": "news@example.com",
        "audience.from_name": "Shop", "audience.reply_to": "help@example.com"})
    assert response.status_code == 302
    settings = _in_force(env)
    assert (settings["audience.from_email"], settings["audience.reply_to"]) == \
        ("news@example.com", "help@example.com")
    assert env.settings["audience.from_email"] == ""          # the file's own value is kept
    with db.read(env.engine) as conn:
        entry = audit_entries(conn, action="settings.update")[0]
    assert entry["details"]["after"] in ("news@example.com", "Shop", "help@example.com")
    page = client.get("/campaigns/new").get_data(as_text=True)
    assert 'value="help@example.com"' in page                   # the new campaign's Reply-To


def test_use_the_config_files_value_again(signed_in, env):
    client = signed_in("Administrator")
    _post(client, "/settings/values", {"group": "optin", "audience.default_optin": "double",
                                       "audience.confirm_hours": "48"})
    assert _in_force(env)["audience.default_optin"] == "double"
    _post(client, "/settings/reset", {"key": "audience.default_optin"})
    assert _in_force(env)["audience.default_optin"] == "single"
    assert _in_force(env)["audience.confirm_hours"] == 48


def test_a_new_list_takes_the_default_optin(signed_in, env, api):
    _post(signed_in("Administrator"), "/settings/values",
          {"group": "optin", "audience.default_optin": "double"})
    created = api("POST", "/lists", json={"name": "Defaults to double"}).get_json()
    assert created["optin"] == "double"
    _post(signed_in("Administrator"), "/settings/reset", {"key": "audience.default_optin"})


def test_a_bad_value_names_the_setting_and_changes_nothing(signed_in, env):
    client = signed_in("Administrator")
    response = _post(client, "/settings/values", {"group": "optin", "audience.confirm_hours": "soon",
                                                  "audience.default_optin": "double"})
    assert response.status_code == 422
    assert "audience.confirm_hours" in response.get_data(as_text=True)
    assert _in_force(env)["audience.default_optin"] == "single"


def test_a_listen_address_cannot_be_set_here(env):
    with db.write(env.engine) as conn, pytest.raises(ServiceError) as refused:
        settings_store.set_value(conn, system_actor(), env.settings, "server.bind", "0.0.0.0:80")
    assert refused.value.message == "server.bind can only be changed in the config file"


def test_relays_with_their_limits_are_saved_here(signed_in, env):
    client = signed_in("Administrator")
    response = _post(client, "/settings/relays", {
        "relay-0-host": "smtp.example.com", "relay-0-port": "587", "relay-0-security": "starttls",
        "relay-0-username": "", "relay-0-password_file": "", "relay-0-max_connections": "8",
        "relay-0-helo": "mail.example.com", "relay-0-verify_tls": "1",
        "relay-1-host": "", "limit-0-domain": "gmail.com", "limit-0-per_second": "20"})
    assert response.status_code == 302
    settings = _in_force(env)
    [relay] = settings["smtp.relays"]
    assert (relay["host"], relay["port"], relay["max_connections"]) == ("smtp.example.com", 587, 8)
    assert settings["delivery.domain_limits"] == [{"domain": "gmail.com", "per_second": 20.0}]
    _post(client, "/settings/reset", {"key": "smtp.relays"})
    _post(client, "/settings/reset", {"key": "delivery.domain_limits"})
    assert _in_force(env)["smtp.relays"] == env.settings["smtp.relays"]


def test_a_relay_may_not_name_a_password_file_the_config_file_does_not(signed_in, env):
    response = _post(signed_in("Administrator"), "/settings/relays", {
        "relay-0-host": "evil.example", "relay-0-password_file": "/etc/altkraft/secret_key"})
    assert response.status_code == 422
    assert "password_file" in response.get_data(as_text=True)
    assert _in_force(env)["smtp.relays"] == env.settings["smtp.relays"]


def test_a_stored_value_the_parser_no_longer_takes_is_skipped(env):
    from altkraft_onprem.db.types import utcnow
    from altkraft_onprem.deliverability.models import settings_overrides
    with db.write(env.engine) as conn:
        conn.execute(settings_overrides.delete())
        conn.execute(settings_overrides.insert().values(key="audience.confirm_hours", value="never",
                                                        updated_at=utcnow(), updated_by="test"))
    try:
        assert _in_force(env)["audience.confirm_hours"] == env.settings["audience.confirm_hours"]
    finally:
        with db.write(env.engine) as conn:
            conn.execute(settings_overrides.delete())


def test_adding_a_domain_in_the_page_shows_its_record_and_how_to_activate(signed_in):
    client = signed_in("Administrator")
    response = _post(client, "/settings/domains", {"domain": "Page.Example.com.",
                                                   "dkim": ["rsa-sha256", "ed25519-sha256"]},
                     follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and '<h1 id="domain-name">page.example.com</h1>' in html
    assert html.count("._domainkey.page.example.com. IN TXT") == 2
    assert html.count("I published it: check DNS and start signing") == 2


def test_adding_a_bad_domain_in_the_page_says_why(signed_in):
    response = _post(signed_in("Administrator"), "/settings/domains", {"domain": "not a domain"})
    assert response.status_code == 422
    assert 'id="settings-error"' in response.get_data(as_text=True)


def test_a_settings_form_without_csrf_token_is_refused(signed_in):
    response = signed_in("Administrator").post("/settings/values", data={"group": "sender"})
    assert response.status_code == 400
