"""The first customer journey, in real Chromium against the real `altkraft run` on a fresh
database: the setup link printed at start creates the administrator, who signs in, sees the
dashboard and creates a Viewer; the Viewer does not get Users & roles.

The tests are steps of one journey and run in file order (each uses what the one before made).
"""
from __future__ import annotations

import pytest

from altkraft_onprem import db, i18n
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from tests.browser import save_artifacts, setup_link, sign_in
from tests.conftest import start_service

pytestmark = pytest.mark.browser

ADMIN = {"name": "Anna Admin", "email": "admin@example.com", "password": "first admin pass 1"}
VIEWER = {"name": "Victor Viewer", "email": "viewer@example.com", "password": "viewer pass 12"}


@pytest.fixture(scope="module")
def service(env):
    i18n.compile_catalogues()       # the Russian steps need current .mo files
    server = start_service(env)
    yield server
    server.stop()


def menu_labels(page) -> list[str]:
    return [label.strip() for label in page.locator("nav.mainnav a").all_inner_texts()]


def test_setup_link_creates_the_administrator(env, service, page):
    page.goto(setup_link(service))
    save_artifacts(page, "first-run-setup")
    page.get_by_label("Name").fill(ADMIN["name"])
    page.get_by_label("Email").fill(ADMIN["email"])
    page.get_by_label("Password (at least 10 characters)").fill(ADMIN["password"])
    page.get_by_label("Password again").fill(ADMIN["password"])
    page.get_by_role("button", name="Create administrator").click()
    page.wait_for_url(service.url + "/")
    assert "administrator account is ready" in page.locator(".flash").inner_text()
    with db.read(env.engine) as conn:
        users = access.list_users(conn)
    assert [(u["email"], u["role"]) for u in users] == [(ADMIN["email"], "Administrator")]


def test_setup_link_is_dead_once_used(service, page):
    response = page.goto(setup_link(service))
    assert response.status == 404


def test_administrator_signs_in_and_sees_the_dashboard(service, page):
    sign_in(page, service.url, ADMIN)
    assert page.locator("h1").inner_text() == "Dashboard"
    assert "Users & roles" in menu_labels(page)
    assert ADMIN["email"] in page.locator("main").inner_text()
    save_artifacts(page, "dashboard-administrator")


def test_administrator_creates_a_viewer(env, service, page):
    sign_in(page, service.url, ADMIN)
    page.locator("nav.mainnav").get_by_role("link", name="Users & roles").click()
    form = page.locator("#new-user")
    form.get_by_label("Email").fill(VIEWER["email"])
    form.get_by_label("Name").fill(VIEWER["name"])
    form.get_by_label("Role").select_option(label="Viewer")
    form.get_by_label("Initial password (at least 10 characters)").fill(VIEWER["password"])
    form.get_by_role("button", name="Create user").click()
    assert "User created." in page.locator(".flash").inner_text()
    row = page.locator("#users tr", has_text=VIEWER["email"])
    assert "Viewer" in row.inner_text()
    save_artifacts(page, "users-and-roles")


def test_viewer_menu_has_no_users_and_roles(service, page):
    sign_in(page, service.url, VIEWER)
    labels = menu_labels(page)
    assert "Dashboard" in labels and "Audience" in labels
    assert "Users & roles" not in labels


def test_viewer_gets_the_403_page_at_users(service, page):
    sign_in(page, service.url, VIEWER)
    response = page.goto(service.url + "/users")
    assert response.status == 403
    assert page.locator("h1").inner_text() == "Not allowed"
    save_artifacts(page, "forbidden-viewer")


def test_sign_in_page_looks_right_on_a_phone(service, new_page):
    page = new_page(viewport={"width": 390, "height": 760})
    page.goto(service.url + "/login")
    assert page.get_by_role("button", name="Sign in").is_visible()
    save_artifacts(page, "login-phone")


def test_sign_in_page_follows_a_russian_browser(service, new_page):
    page = new_page(locale="ru-RU")
    page.goto(service.url + "/login")
    assert page.locator("h1").inner_text() == "Войти"
    assert page.get_by_label("Пароль").is_visible()


def test_russian_viewer_gets_the_russian_dashboard(env, service, new_page):
    with db.write(env.engine) as conn:
        viewer_id = access.user_id_by_email(conn, VIEWER["email"])
        access.update_user(conn, system_actor(), viewer_id, locale="ru")
    page = new_page(locale="en-US")
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(VIEWER["email"])
    page.get_by_label("Password").fill(VIEWER["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")
    assert page.locator("h1").inner_text() == "Обзор"
    assert "Аудитория" in menu_labels(page)
    save_artifacts(page, "dashboard-viewer-ru")
