"""Two-factor sign-in in real Chromium against the real service: a user sets it up from the
profile (the key read off the page, the code computed with pyotp as an authenticator app
would), signs out, and signs in with the password and then a code; a recovery code works in
place of the phone."""
from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from tests.browser import save_artifacts, sign_in

pytestmark = pytest.mark.browser


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")


def password(page, base_url: str, user: dict) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Email").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()


def test_set_up_then_sign_in_with_a_code(env, live_server, page):
    user = env.user("Editor")
    sign_in(page, live_server.url, user)
    page.goto(live_server.url + "/profile")
    expect(page.locator("#two-factor-summary")).to_have_text("Off: your password alone signs you in.")
    page.get_by_role("link", name="Set up two-factor sign-in").click()
    expect(page.get_by_role("img", name="QR code for your authenticator app")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    page.get_by_label("Authentication code").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    save_artifacts(page, "two-factor-recovery-codes")
    page.get_by_role("link", name="I have saved them, continue").click()
    sign_out(page)

    password(page, live_server.url, user)
    page.wait_for_url(live_server.url + "/login/code")
    page.get_by_label("Authentication code").fill("000000")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_have_text("That code is not right.")
    # The next step's code: accepted within the window, and not the one used to enrol.
    page.get_by_label("Authentication code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(live_server.url + "/")
    expect(page.get_by_text(user["email"]).first).to_be_visible()
    sign_out(page)

    password(page, live_server.url, user)
    page.wait_for_url(live_server.url + "/login/code")
    page.get_by_label("Authentication code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(live_server.url + "/")
    expect(page.get_by_role("status")).to_contain_text("recovery code; 9 are left")


def test_a_role_that_requires_it_enrols_at_sign_in_in_russian(env, live_server, new_page):
    user = env.user("Viewer")
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, system_actor(), "Охрана", ["dashboard:read"])
        access.set_role_requirement(conn, system_actor(), role_id, True)
        access.update_user(conn, system_actor(), user["id"], role_id=role_id, locale="ru")
    page = new_page(locale="ru-RU")
    page.goto(live_server.url + "/login")
    page.get_by_label("Электронная почта").fill(user["email"])
    page.get_by_label("Пароль").fill(user["password"])
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url(live_server.url + "/login/enrol")
    expect(page.get_by_role("heading", level=1)).to_have_text("Настроить двухфакторный вход")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("Код подтверждения").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Включить двухфакторный вход").click()
    expect(page.locator("#recovery-codes code")).to_have_count(10)
    page.get_by_role("link", name="Коды сохранены, продолжить").click()
    page.wait_for_url(live_server.url + "/")
