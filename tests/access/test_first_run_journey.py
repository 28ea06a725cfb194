"""The issue's "Done when", end to end through the real service (`altkraft run`), as a browser
would do it with plain HTTP: setup link from stdout -> first Administrator -> login -> an Editor
user -> an API token from the UI -> /api/v1/me with it -> the audit log shows all three actions."""
from __future__ import annotations

import csv
import io
import re
import time

import pytest
import requests

from tests.conftest import PASSWORD, csrf_token, start_service

ADMIN = "first.admin@example.com"
EDITOR = "first.editor@example.com"


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env)
    yield server
    server.stop()


def _setup_link(server) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"First run: create the administrator at (\S+)", server.log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError("no setup link printed:\n" + server.log.read_text())


def _post_form(browser: requests.Session, page_url: str, data: dict, action: str | None = None):
    page = browser.get(page_url, timeout=10)
    assert page.status_code == 200, page.text[:300]
    return browser.post(action or page_url, data={**data, "csrf_token": csrf_token(page.text)},
                        allow_redirects=False, timeout=10)


@pytest.mark.slow
def test_fresh_install_to_api_call_with_audit_trail(service):
    browser = requests.Session()
    link = _setup_link(service)
    assert link.startswith(service.url + "/setup/")

    created = _post_form(browser, link, {"email": ADMIN, "name": "First Admin",
                                         "password": PASSWORD, "password2": PASSWORD})
    assert created.status_code == 302, created.text[:500]
    assert browser.get(link, timeout=10).status_code == 404          # the link is used up

    signed_out = _post_form(browser, service.url + "/", {}, service.url + "/logout")
    assert signed_out.status_code == 302
    assert browser.get(service.url + "/users", allow_redirects=False, timeout=10).status_code == 302
    logged_in = _post_form(browser, service.url + "/login", {"email": ADMIN, "password": PASSWORD})
    assert logged_in.status_code == 302 and logged_in.headers["Location"] == "/"

    users_page = browser.get(service.url + "/users", timeout=10).text
    editor_role_id = re.search(r'<option value="(\d+)"[^>]*>Editor</option>', users_page).group(1)
    made_editor = _post_form(browser, service.url + "/users", {
        "email": EDITOR, "name": "Ed", "role_id": editor_role_id, "password": PASSWORD, "locale": ""})
    assert made_editor.status_code == 302, made_editor.text[:500]
    assert EDITOR in browser.get(service.url + "/users", timeout=10).text

    made_token = _post_form(browser, service.url + "/profile", {"name": "first token"},
                            service.url + "/profile/tokens")
    assert made_token.status_code == 302
    profile = browser.get(service.url + "/profile", timeout=10).text
    token = re.search(r'id="new-token">([^<]+)</code>', profile).group(1)
    assert token not in browser.get(service.url + "/profile", timeout=10).text   # shown once

    me = requests.get(service.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.status_code == 200
    assert me.json()["email"] == ADMIN and me.json()["role"] == "Administrator"

    audit_page = browser.get(service.url + "/audit", timeout=10).text
    assert audit_page.count("<code>user.create</code>") == 2 and "<code>token.create</code>" in audit_page
    rows = list(csv.DictReader(io.StringIO(browser.get(service.url + "/audit.csv", timeout=10).text)))
    actions = [(r["action"], r["actor"], r["ip"]) for r in reversed(rows)]
    assert actions == [("user.create", ADMIN, "127.0.0.1"), ("user.create", ADMIN, "127.0.0.1"),
                       ("token.create", ADMIN, "127.0.0.1")]
    assert EDITOR in rows[1]["details"]
