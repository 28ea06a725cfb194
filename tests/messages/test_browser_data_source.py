"""A message with external data in real Chromium: add a data source, edit, save twice, reload.

Issue 15 item 1: after adding a data source every later save answered 500 and the editor stayed
at "Saving…" (unsaved work at risk).
"""
from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from .conftest import open_new_message

pytestmark = pytest.mark.browser


def _current(env, message_id: int) -> dict:
    from altkraft_onprem import db
    from altkraft_onprem.messages import service

    with db.read(env.engine) as conn:
        return service.get_version(conn, message_id)


def _save(page, version: int) -> None:
    page.locator("#save").click()
    expect(page.locator("#save-status")).to_have_text(f"Saved as version {version}")


def test_a_message_with_a_data_source_saves_twice_and_reloads(signed_in, service, env):
    page = signed_in
    message_id = open_new_message(page, service.url, "Promo with data")

    page.locator("#editor-tabs [data-pane=data]").click()
    page.get_by_label("Source").select_option("document")
    page.get_by_label("JSON document").fill('{"promo": "SPRING-25"}')
    _save(page, 2)
    page.get_by_label("Subject", exact=True).fill("Your code inside")
    _save(page, 3)
    page.get_by_label("Subject", exact=True).fill("Your code inside, last days")
    _save(page, 4)

    page.reload()
    page.locator("#gjs iframe.gjs-frame").wait_for()
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Your code inside, last days")
    page.locator("#editor-tabs [data-pane=data]").click()
    expect(page.get_by_label("Source")).to_have_value("document")
    assert json.loads(page.get_by_label("JSON document").input_value()) == {"promo": "SPRING-25"}
    saved = _current(env, message_id)
    assert saved["version"] == 4
    assert saved["data_source"] == {"kind": "document", "document": {"promo": "SPRING-25"}}


def test_a_save_after_signing_out_in_another_tab_says_so(signed_in, service):
    """The save is answered by the sign-in page (not JSON): the editor says the work is not
    saved instead of showing "Saving…" forever."""
    page = signed_in
    open_new_message(page, service.url, "Session ends")
    other_tab = page.context.new_page()
    other_tab.goto(service.url + "/")
    other_tab.get_by_role("button", name="Sign out").click()
    other_tab.wait_for_url(re.compile(r".*/login.*"))
    page.get_by_label("Subject", exact=True).fill("Typed before the save")
    page.locator("#save").click()
    expect(page.locator("#save-status")).to_contain_text("Not saved")
    expect(page.get_by_label("Subject", exact=True)).to_have_value("Typed before the save")
