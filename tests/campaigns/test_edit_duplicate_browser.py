"""Duplicate and Edit in real Chromium against the real service: "Duplicate" on a campaign's
page opens the copy's edit form, a changed name and list are saved, the copy is a draft."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns
from tests.browser import save_artifacts, sign_in
from tests.campaigns.helpers import make_campaign, make_list, make_message

pytestmark = pytest.mark.browser


def test_duplicate_then_edit_the_copy(env, service, page):
    user = env.user("Manager")
    first, _ = make_list(env, "Browser one", [{"email": "b1@example.org"}])
    second, _ = make_list(env, "Browser two", [{"email": "b2@example.org"}])
    source_id = make_campaign(env, make_message(env), [first], name="Autumn")
    sign_in(page, service.url, user)
    try:
        page.goto(f"{service.url}/campaigns/{source_id}")
        page.get_by_role("button", name="Duplicate").click()
        page.wait_for_url("**/edit")
        expect(page.get_by_role("heading", name="Edit campaign")).to_be_visible()
        expect(page.get_by_label("Name", exact=True)).to_have_value("Copy of Autumn")
        page.get_by_label("Name", exact=True).fill("Winter")
        page.get_by_label("Browser one").first.uncheck()
        page.get_by_label("Browser two").first.check()
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("heading", name="Winter")).to_be_visible()
        expect(page.locator("#state")).to_have_attribute("data-state", "draft")
    except Exception:
        save_artifacts(page, "duplicate_then_edit")
        raise
    copy_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    with db.read(env.engine) as conn:
        copy, source = campaigns.get_campaign(conn, copy_id), campaigns.get_campaign(conn, source_id)
    assert (copy["name"], copy["list_ids"], copy["state"]) == ("Winter", [second], "draft")
    assert (source["name"], source["list_ids"]) == ("Autumn", [first])
