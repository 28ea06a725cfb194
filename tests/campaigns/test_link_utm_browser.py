"""Per-link UTM marks in real Chromium against the real service: choose a message (its links
arrive), give link 1 (the second) its own utm_content, start the campaign; the sent message's
tracked redirect for that link carries it, the first link only the campaign-wide marks."""
from __future__ import annotations

import http.client
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.messages import service as messages
from tests.browser import save_artifacts, sign_in
from tests.campaigns.helpers import ACTOR, make_list
from tests.campaigns.test_link_utm import HTML

pytestmark = pytest.mark.browser


def _redirect(base: str, url: str) -> str:
    """Where a click link sends the reader (the Location of its redirect)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", urlsplit(url).path)
    response = conn.getresponse()
    assert response.status in (301, 302, 303, 307), response.status
    return response.getheader("Location")


def test_choose_message_mark_second_link_send_and_follow(env, service, sink, page):
    make_list(env, "UTM browser list", [{"email": "utm-reader@example.org"}])
    with db.write(env.engine) as conn:
        messages.create_message(conn, ACTOR, "Per-link marks", subject="Links", html=HTML)
    sign_in(page, service.url, env.user("Manager"))
    try:
        page.goto(service.url + "/campaigns/new")
        form = page.locator("#campaign-form")
        form.get_by_label("Name", exact=True).fill("Per-link UTM")
        form.get_by_label("Message").select_option(label="Per-link marks")
        second = form.locator("#link_utm-1-utm_content")
        expect(second).to_be_visible()
        expect(form.locator("fieldset.link-utm").nth(1)).to_contain_text("https://shop.example.com/two?x=1")
        # by keyboard: the first link's first mark, then Tab through to link 1's utm_content
        form.locator("#link_utm-0-utm_source").focus()
        for _ in range(7):
            page.keyboard.press("Tab")
        expect(second).to_be_focused()
        page.keyboard.type("second-link")
        form.locator("fieldset").filter(has_text="Send to these lists").get_by_label("UTM browser list").check()
        form.get_by_label("From address").fill("news@example.com")
        form.locator("input[name=utm_source]").fill("altkraft")
        form.get_by_label("Start the campaign right now (in addition to schedule)").check()
        form.get_by_role("button", name="Create campaign").click()
        expect(page.locator("#state")).to_have_attribute("data-state", "finished", timeout=60_000)
    except Exception:
        save_artifacts(page, "link_utm_send")
        raise
    html = sink.by_recipient("utm-reader@example.org")[0].get_body(("html",)).get_content()
    clicks = re.findall(r'href="([^"]*/t/c/[^"]+)"', html)
    first, second_target = _redirect(service.url, clicks[0]), _redirect(service.url, clicks[1])
    assert first.startswith("https://shop.example.com/one?")
    assert parse_qs(urlsplit(first).query) == {"utm_source": ["altkraft"]}
    assert second_target.startswith("https://shop.example.com/two?")
    assert parse_qs(urlsplit(second_target).query) == {
        "x": ["1"], "utm_source": ["altkraft"], "utm_content": ["second-link"]}
