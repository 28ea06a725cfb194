"""Shared pieces for the messages tests: a version row and a rendering context."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import start_service

NEWSLETTER = Path(__file__).resolve().parents[1] / "fixtures" / "newsletter.html"


def version(html: str = "<p>Hello {{ subscriber.first_name | default('friend') }}</p>",
            subject: str = "Hi", **extra) -> dict:
    row = {"id": None, "subject": subject, "preheader": "", "html": html, "text": "",
           "text_follows_html": True}
    row.update(extra)
    return row


def context(**subscriber) -> dict:
    base = {"id": 7, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
            "city": "Oslo", "timezone": "Europe/Oslo", "language": "en",
            "created_at": "2024-01-31T23:30:00+00:00", "custom": {"loyalty_tier": "Gold", "bonus_points": 12}}
    base.update(subscriber)
    return {"subscriber": base, "list": {"name": "News"}, "campaign": {"name": "C"},
            "unsubscribe_url": "https://app.example/p/u/1", "preferences_url": "https://app.example/p/pref/1",
            "view_in_browser_url": "https://app.example/p/v/1", "data": {}}


@pytest.fixture(scope="session")
def newsletter_html() -> str:
    return NEWSLETTER.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def token(env) -> str:
    return env.token("Editor")


@pytest.fixture()
def api(env, token):
    client = env.app.test_client()

    def call(method: str, path: str, **kwargs):
        headers = kwargs.pop("headers", {})
        headers["Authorization"] = f"Bearer {token}"
        return client.open("/api/v1" + path, method=method, headers=headers, **kwargs)
    return call


def add_subscriber(env, email: str, **fields) -> int:
    """A subscriber made through the audience service (custom fields defined on the way)."""
    from altkraft_onprem import db
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.audience import fields as audience_fields
    from altkraft_onprem.audience import subscribers

    with db.write(env.engine) as conn:
        for key in fields.get("custom", {}):
            audience_fields.ensure_field(conn, system_actor(), key)
        return subscribers.create_subscriber(conn, system_actor(), {"email": email, **fields})


# --- browser tests: the real service, and a page signed in to it as an editor ---------------

@pytest.fixture(scope="module")
def service(env):
    server = start_service(env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def editor_user(env):
    return env.user("Editor")


@pytest.fixture()
def signed_in(page, service, editor_user):
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(editor_user["email"])
    page.get_by_label("Password").fill(editor_user["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")
    return page


def open_new_message(page, base_url: str, name: str) -> int:
    """Creates a message from the messages page, as a person does; the editor is open after."""
    page.goto(base_url + "/messages")
    page.get_by_label("Name (for you, recipients do not see it)").fill(name)
    page.get_by_role("button", name="Create and open the editor").click()
    page.wait_for_url(re.compile(r".*/messages/\d+$"))
    page.locator("#gjs iframe.gjs-frame").wait_for()
    return int(page.url.rsplit("/", 1)[1])
