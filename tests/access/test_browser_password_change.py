"""A password change in real Chromium against the real service: what ends (every signed-in
session of the user, in every browser) and what stays (the user's API tokens), exactly as the
profile page and docs/admin.md say."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from tests.browser import sign_in
from tests.conftest import start_service

pytestmark = pytest.mark.browser

ADMIN_MD = Path(__file__).resolve().parents[2] / "docs" / "admin.md"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env)
    yield server
    server.stop()


def test_a_password_change_ends_every_session_and_keeps_the_api_tokens(env, service, new_page):
    user = env.user("Editor")
    with db.write(env.engine) as conn:
        _, token = access.create_token(conn, system_actor(), user["id"], "CRM sync")
    here, elsewhere = new_page(), new_page()
    sign_in(here, service.url, user)
    sign_in(elsewhere, service.url, user)

    here.goto(service.url + "/profile")
    expect(here.locator("#password-effect")).to_have_text(
        "Changing the password signs you out of every browser, this one included. Your API tokens "
        "keep working, so integrations do not stop; if the password may have leaked, revoke the "
        "tokens you do not recognise below.")
    here.get_by_label("Current password").fill(user["password"])
    here.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    here.get_by_label("New password again").fill(NEW_PASSWORD)
    here.get_by_role("button", name="Change password").click()

    here.wait_for_url(service.url + "/login")
    elsewhere.goto(service.url + "/campaigns")
    expect(elsewhere).to_have_url(service.url + "/login?next=/campaigns")
    me = requests.get(service.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                      timeout=10)
    assert me.status_code == 200 and me.json()["email"] == user["email"]
    sign_in(here, service.url, {"email": user["email"], "password": NEW_PASSWORD})


def test_the_admin_guide_says_the_same():
    guide = " ".join(ADMIN_MD.read_text(encoding="utf-8").split())
    assert ("| signed-in browser sessions of that user, the current one included | end at once: "
            "sign in again with the new password |") in guide
    assert "| the user's API tokens | keep working:" in guide
    assert "signs that user out everywhere" not in guide
