"""The UI by keyboard alone, in real Chromium against the real `altkraft run` (the SMTP sink is
its relay): a whole task — sign in, create a list, paste two subscribers, write a message,
start a campaign — with Tab, Shift+Tab, arrows, Space, Enter and typing only; then the pieces
that make it possible one by one: the skip link, the menu button at 390 px, the editor's tabs
(WAI-ARIA tabs pattern), the HTML editor that Tab leaves, the named emoji button.
"""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import lists, subscriber_lists, subscribers
from tests.browser import sign_in
from tests.campaigns.helpers import start_sending_service

pytestmark = pytest.mark.browser

FOCUSED = """([selector, text]) => {
  const el = document.activeElement;
  if (!el || el === document.body) return false;
  const name = (el.getAttribute('aria-label') || el.innerText || el.value || '').trim();
  return (!selector || el.matches(selector)) && (!text || name === text);
}"""


def tab_to(page, selector: str | None = None, *, text: str | None = None, back: bool = False,
           limit: int = 150) -> None:
    """Presses Tab (Shift+Tab with back) until the focused element matches `selector` and/or
    has the accessible text `text`; fails naming where focus went."""
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate(FOCUSED, [selector, text]):
            return
    where = page.evaluate("document.activeElement && document.activeElement.outerHTML.slice(0, 200)")
    raise AssertionError(f"{limit} x Tab never reached {selector or ''} {text or ''}; focus is on {where}")


def press_enter_and_load(page) -> None:
    """Enter on a link or a submit button, then the next page's load."""
    with page.expect_navigation():
        page.keyboard.press("Enter")


def focus_is_in(page, selector: str) -> bool:
    return page.evaluate("s => !!document.activeElement && !!document.activeElement.closest(s)", selector)


@pytest.fixture(scope="module")
def service(env, module_smtp_sink):
    server = start_sending_service(env, module_smtp_sink)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(env):
    return env.user("Administrator")


@pytest.fixture()
def signed_in(page, service, admin):
    sign_in(page, service.url, admin)
    return page


def wait_for(check, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_whole_task_by_keyboard_only(env, service, admin, page, module_smtp_sink):
    url = service.url
    # Sign in: the skip link is the first stop, then the form.
    page.goto(url + "/login")
    tab_to(page, "input[name=email]")
    page.keyboard.type(admin["email"])
    page.keyboard.press("Tab")
    page.keyboard.type(admin["password"])
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/")

    # Create a list: the menu's Audience, then the new-list form.
    tab_to(page, "nav.mainnav a", text="Audience")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/audience/")
    tab_to(page, "#new-list input[name=name]")
    page.keyboard.type("Keyboard list")
    tab_to(page, "#new-list button[type=submit]")
    press_enter_and_load(page)
    expect(page.locator(".flash")).to_be_visible()
    with db.read(env.engine) as conn:
        list_id = conn.execute(select(lists.c.id).where(lists.c.name == "Keyboard list")).scalar_one()

    # Paste two subscribers into the import page, onto that list.
    tab_to(page, "a", text="Import")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/audience/import/")
    tab_to(page, "#paste")
    page.keyboard.type("email,first_name\nkate@example.org,Kate\nkarl@example.org,Karl")
    tab_to(page, f"input[name=lists][value='{list_id}']")
    page.keyboard.press("Space")
    tab_to(page, "#preview-button")
    press_enter_and_load(page)
    tab_to(page, "#start-button")
    press_enter_and_load(page)
    page.wait_for_url(lambda address: "/audience/import/" in address and address.rstrip("/")[-1].isdigit())

    def members():
        with db.read(env.engine) as conn:
            return sorted(conn.execute(select(subscribers.c.email).join(
                subscriber_lists, subscriber_lists.c.subscriber_id == subscribers.c.id).where(
                subscriber_lists.c.list_id == list_id)).scalars())
    assert wait_for(lambda: members() == ["karl@example.org", "kate@example.org"], what="the import")

    # Write a message: name it, then subject and HTML in the editor; save.
    tab_to(page, "nav.mainnav a", text="Messages")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/messages")
    tab_to(page, "#new-message input[name=name]")
    page.keyboard.type("Keyboard message")
    press_enter_and_load(page)
    page.wait_for_url(lambda address: address.rstrip("/").rsplit("/", 1)[-1].isdigit())
    page.locator("#gjs iframe.gjs-frame").wait_for()
    tab_to(page, "#subject")
    page.keyboard.type("Hello from the keyboard")
    tab_to(page, "#editor-tabs [role=tab]")
    while not page.evaluate("document.activeElement.dataset.pane === 'code'"):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator("#pane-code")).to_be_visible()
    tab_to(page, ".CodeMirror textarea")
    page.keyboard.press("Control+A")
    page.keyboard.type('<p>Hello {{ subscriber.first_name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
    page.keyboard.press("Tab")
    assert not focus_is_in(page, ".CodeMirror"), "Tab must leave the HTML editor"
    tab_to(page, "#save", back=True)
    page.keyboard.press("Enter")
    expect(page.locator("#save-status")).to_contain_text("2")

    # Start a campaign of it to the list, right now.
    tab_to(page, "nav.mainnav a", text="Campaigns")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/campaigns")
    tab_to(page, "#new-campaign")
    page.keyboard.press("Enter")
    page.wait_for_url(url + "/campaigns/new")
    tab_to(page, "#campaign-form input[name=name]")
    page.keyboard.type("Keyboard campaign")
    page.keyboard.press("Tab")                  # the message: a select chooses by typing
    page.keyboard.type("Keyboard message")
    tab_to(page, f"input[name=lists][value='{list_id}']")
    page.keyboard.press("Space")
    tab_to(page, "input[name=from_email]")
    page.keyboard.type("news@example.com")
    tab_to(page, "#start_now")
    page.keyboard.press("Space")
    tab_to(page, "#campaign-form button[type=submit]")
    press_enter_and_load(page)
    page.wait_for_url(lambda address: address.rstrip("/").rsplit("/", 1)[-1].isdigit())
    people = ("kate@example.org", "karl@example.org")
    wait_for(lambda: all(module_smtp_sink.by_recipient(person) for person in people),
             what="the campaign's two emails")


def test_the_skip_link_is_the_first_stop_and_leads_to_the_content(signed_in):
    page = signed_in
    page.keyboard.press("Tab")
    link = page.locator(":focus")
    expect(link).to_have_text("Skip to content")
    assert link.bounding_box()["y"] >= 0        # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    page.keyboard.press("Tab")
    assert focus_is_in(page, "main"), "after the skip link, Tab goes on inside the content"


def test_the_menu_button_opens_the_menu_by_keyboard_on_a_phone(signed_in, service):
    page = signed_in
    page.set_viewport_size({"width": 390, "height": 844})
    menu = page.locator("#sidebar")
    expect(menu).to_be_hidden()
    tab_to(page, "#nav-button")
    button = page.locator("#nav-button")
    assert button.evaluate("b => b.tagName") == "BUTTON"
    expect(button).to_have_attribute("aria-controls", "sidebar")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(button).to_have_accessible_name("Menu")
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(menu).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    assert page.evaluate("document.activeElement.id") == "nav-button"
    page.keyboard.press("Space")
    tab_to(page, "nav.mainnav a", text="Reports")
    page.keyboard.press("Enter")
    page.wait_for_url(service.url + "/reports/")


def open_editor(page, base_url: str, name: str) -> None:
    page.goto(base_url + "/messages")
    page.locator("#new-message input[name=name]").fill(name)
    page.locator("#new-message input[name=name]").press("Enter")
    page.locator("#gjs iframe.gjs-frame").wait_for()


def test_the_editor_tabs_follow_the_wai_aria_tabs_pattern(signed_in, service):
    page = signed_in
    open_editor(page, service.url, "Tabs pattern")
    tabs = page.locator("#editor-tabs [role=tab]")
    count = tabs.count()
    assert count >= 6
    for index in range(count):
        tab = tabs.nth(index)
        panel = page.locator("#" + tab.get_attribute("aria-controls"))
        expect(panel).to_have_attribute("role", "tabpanel")
        expect(panel).to_have_attribute("aria-labelledby", tab.get_attribute("id"))
    # One tab stop: the selected tab; the arrows move, Home and End jump, Enter opens.
    assert [tabs.nth(i).get_attribute("tabindex") for i in range(count)] == ["0"] + ["-1"] * (count - 1)
    last = tabs.nth(count - 1).get_attribute("id")
    tab_to(page, "#editor-tabs [role=tab]")
    assert page.evaluate("document.activeElement.id") == "tab-visual"
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-code"
    page.keyboard.press("End")
    assert page.evaluate("document.activeElement.id") == last
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-visual"
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator("#tab-text")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#tab-text")).to_have_attribute("tabindex", "0")
    expect(page.locator("#pane-text")).to_be_visible()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "tab-text"   # back to the selected tab


def test_the_html_editor_lets_tab_out_and_says_how_to_indent(signed_in, service):
    page = signed_in
    open_editor(page, service.url, "Tab out")
    page.locator("#tab-code").press("Enter")
    hint = page.locator("#code-keys")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("Ctrl+]")
    field = page.locator(".CodeMirror textarea")
    expect(field).to_have_accessible_name("HTML of the message")
    expect(field).to_have_accessible_description(hint.inner_text())
    field.focus()
    page.keyboard.press("Control+Home")
    page.keyboard.press("Control+BracketRight")                # indents the line, as the hint says
    assert page.evaluate("window.altkraftEditor.cm().getLine(0)").startswith("  ")
    page.keyboard.press("Tab")
    assert not focus_is_in(page, ".CodeMirror")
    field.focus()
    page.keyboard.press("Shift+Tab")
    assert not focus_is_in(page, ".CodeMirror")
    assert page.evaluate("document.activeElement.id") == "tab-code"


def test_the_emoji_button_has_a_name(signed_in, service):
    page = signed_in
    open_editor(page, service.url, "Emoji")
    button = page.locator("#emoji-button")
    expect(button).to_have_accessible_name("Insert emoji")
    button.focus()
    page.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#emoji-popup")).to_be_visible()


def test_a_table_box_that_stops_scrolling_is_no_named_region_any_more(signed_in, service):
    page = signed_in
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(service.url + "/users")
    box = page.locator(".scroll").first
    expect(box).to_have_attribute("role", "region")
    expect(box).to_have_attribute("tabindex", "0")
    assert box.get_attribute("aria-label")            # named after its section's heading
    page.set_viewport_size({"width": 1600, "height": 900})
    page.wait_for_function("b => !b.hasAttribute('role')", arg=box.element_handle())
    assert box.evaluate("b => [b.hasAttribute('tabindex'), b.getAttribute('aria-label')]") == [False, None]
    page.set_viewport_size({"width": 390, "height": 844})     # and back: named again
    expect(box).to_have_attribute("role", "region")
    assert box.get_attribute("aria-label")
