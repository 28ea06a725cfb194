"""The editor in real Chromium against the real service: build a message in the visual editor,
insert an uploaded image, add an emoji to the subject, generate the text version, preview as a
subscriber (sandboxed iframe), save, and restore an earlier version.

The tests are steps of one journey and run in file order (each uses what the one before made).
"""
from __future__ import annotations

import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser import save_artifacts

from .conftest import add_subscriber, open_new_message

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def state():
    return {}


def ready(page) -> None:
    """The editor page has its visual editor (GrapesJS canvas) up."""
    page.locator("#gjs iframe.gjs-frame").wait_for()
    expect(page.locator("#editor-tabs [aria-selected=true]")).to_have_count(1)


def canvas(page):
    return page.frame_locator("#gjs iframe.gjs-frame")


def test_new_message_opens_the_visual_editor(signed_in, service, state):
    page = signed_in
    open_new_message(page, service.url, "Browser newsletter")
    state["url"] = page.url
    ready(page)
    assert page.locator("#editor-tabs [data-pane=visual]").get_attribute("aria-selected") == "true"


def current(env, state) -> dict:
    from altkraft_onprem import db
    from altkraft_onprem.messages import service

    with db.read(env.engine) as conn:
        return service.get_version(conn, state["message_id"])


def save(page, version: int) -> None:
    page.locator("#save").click()
    expect(page.locator("#save-status")).to_contain_text(f"version {version}")


def test_build_text_and_image_in_the_visual_editor(signed_in, env, state, tmp_path):
    page = signed_in
    state["message_id"] = int(state["url"].rsplit("/", 1)[1])
    page.goto(state["url"])
    ready(page)
    # The newsletter preset's Text block, added to the canvas and typed into.
    blocks_button = page.locator(".gjs-pn-btn[title='Open Blocks']")
    if "gjs-pn-active" not in (blocks_button.get_attribute("class") or ""):
        blocks_button.click()
    page.locator(".gjs-block[title='Text']").click()        # appendOnClick: adds it to the page
    canvas(page).get_by_text("Insert your text here", exact=True).dblclick()
    canvas(page).locator("[contenteditable=true]").fill(
        "Hello {{ subscriber.first_name | default('friend') }}, our sale is on")
    canvas(page).locator("body").click(position={"x": 5, "y": 5})
    # An uploaded image (wider than the limit: resized on upload), inserted from the Images tab.
    png = tmp_path / "banner.png"
    Image.new("RGB", (1600, 400), "teal").save(png)
    page.locator("#editor-tabs [data-pane=images]").click()
    page.locator("#image-file").set_input_files(str(png))
    page.locator("#image-upload").click()
    pick = page.locator("#image-list .media-pick").first
    pick.wait_for()
    state["image_url"] = pick.get_attribute("data-url")
    pick.click()
    assert canvas(page).locator(f"img[src='{state['image_url']}']").count() == 1
    save(page, 2)
    saved = current(env, state)
    assert saved["editor"] == "visual" and saved["editor_state"]
    assert "Hello {{ subscriber.first_name | default('friend') }}, our sale is on" in saved["html"]
    assert state["image_url"] in saved["html"]


def test_visual_content_survives_a_switch_to_html_and_back(signed_in, state):
    page = signed_in
    page.goto(state["url"])
    ready(page)
    page.locator("#editor-tabs [data-pane=code]").click()
    code = page.evaluate("window.altkraftEditor.cm().getValue()")
    assert "our sale is on" in code and state["image_url"] in code
    page.locator("#editor-tabs [data-pane=visual]").click()
    assert canvas(page).get_by_text("our sale is on").count() == 1
    assert canvas(page).locator(f"img[src='{state['image_url']}']").count() == 1


def test_code_mode_shows_template_problems_with_their_lines(signed_in, state):
    page = signed_in
    page.goto(state["url"])
    ready(page)
    page.locator("#editor-tabs [data-pane=code]").click()
    page.evaluate("window.altkraftEditor.cm().setValue('<p>fine</p>\\n<p>{{ customer.name }}</p>\\n')")
    expect(page.locator("#problems li")).to_contain_text("html line 2: unknown variable 'customer'")
    expect(page.locator("#pane-code .cm-problem")).to_have_count(1)


def test_emoji_goes_into_the_subject(signed_in, env, state):
    page = signed_in
    page.goto(state["url"])
    subject = page.get_by_label("Subject", exact=True)
    subject.fill("Winter sale ")
    page.locator("#emoji-button").click()
    picker = page.locator("emoji-picker")
    picker.get_by_placeholder("Search").fill("party popper")     # data from our own server
    picker.locator("[id='emo-🎉']").click()
    expect(subject).to_have_value("Winter sale 🎉")
    expect(page.locator("#emoji-popup")).to_be_hidden()
    state["subject"] = "Winter sale 🎉"
    save(page, 3)
    assert current(env, state)["subject"] == "Winter sale 🎉"


def test_text_version_is_generated_from_the_html(signed_in, env, state):
    page = signed_in
    page.goto(state["url"])
    page.locator("#editor-tabs [data-pane=text]").click()
    page.locator("#generate-text").click()
    expect(page.locator("#text")).to_have_value(re.compile("our sale is on"))
    text = page.locator("#text").input_value()
    assert "Hello {{ subscriber.first_name | default('friend') }}, our sale is on" in text
    page.locator("#text").fill(text + "\nSee you soon!")
    assert not page.locator("#text-follows").is_checked()
    save(page, 4)
    saved = current(env, state)
    assert saved["text"].endswith("See you soon!") and saved["text_follows_html"] is False


def test_a_late_generated_text_does_not_overwrite_typing(signed_in, state):
    """The generated text comes back from the server; if the person typed meanwhile, what they
    typed stays (CI once saw a slow answer clobber it)."""
    page = signed_in
    page.goto(state["url"])
    ready(page)
    page.evaluate("""() => {
        const original = window.fetch;
        window.fetch = (url, options) => String(url).includes("text-version")
            ? new Promise((resolve) => setTimeout(() => resolve(original(url, options)), 1500))
            : original(url, options);
    }""")
    page.locator("#editor-tabs [data-pane=text]").click()
    page.locator("#generate-text").click()
    page.locator("#text").fill("Typed by hand")
    page.wait_for_timeout(2500)                         # both delayed answers have arrived
    expect(page.locator("#text")).to_have_value("Typed by hand")
    assert not page.locator("#text-follows").is_checked()


def test_preview_as_a_subscriber_in_a_sandboxed_frame(signed_in, env, state):
    add_subscriber(env, "olga.browser@example.com", first_name="Olga")
    page = signed_in
    page.goto(state["url"])
    page.locator("#editor-tabs [data-pane=preview]").click()
    page.locator("#preview-email").fill("olga.browser@example.com")
    page.locator("#preview-run").click()
    frame = page.locator("#preview-frame")
    expect(frame).to_have_attribute("srcdoc", re.compile("Hello Olga"))
    assert frame.get_attribute("sandbox") == ""
    expect(page.frame_locator("#preview-frame").locator("body")).to_contain_text("Hello Olga, our sale is on")
    assert page.locator("#preview-subject").inner_text() == state["subject"]
    page.get_by_role("button", name="Mobile").click()
    assert frame.evaluate("f => f.getBoundingClientRect().width") == 375
    page.get_by_role("button", name="Text", exact=True).click()
    assert "See you soon!" in page.locator("#preview-text").inner_text()
    save_artifacts(page, "messages-preview")


def test_a_script_in_the_message_does_not_run_in_the_preview(signed_in, state):
    page = signed_in
    page.goto(state["url"])
    page.locator("#editor-tabs [data-pane=code]").click()
    page.evaluate("""window.altkraftEditor.cm().setValue(
        '<html><body><p id=x>static</p><script>document.getElementById("x").textContent = "ran";'
        + 'parent.document.title = "pwned";</scr' + 'ipt></body></html>')""")
    page.locator("#editor-tabs [data-pane=preview]").click()
    page.locator("#preview-run").click()
    expect(page.locator("#preview-frame")).to_have_attribute("srcdoc", re.compile("static"))
    expect(page.frame_locator("#preview-frame").locator("#x")).to_have_text("static")
    assert page.title() != "pwned"


def test_an_earlier_version_is_restored(signed_in, env, state):
    page = signed_in
    page.goto(state["url"] + "/versions")
    assert page.locator("#versions tbody tr").count() == 4
    page.locator("tr[data-version='1'] button.restore").click()
    page.wait_for_url(state["url"])
    assert "Version 1 restored as version 5" in page.locator(".flash.success").inner_text()
    restored = current(env, state)
    assert restored["version"] == 5 and "our sale is on" not in restored["html"]
    assert restored["subject"] == "Browser newsletter"


HEAD_HTML = """<!DOCTYPE html>
<html lang="ru" xmlns:v="urn:schemas-microsoft-com:vml">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{{ campaign.subject }} — зима</title>
<style>p { color: #333333; } @media (max-width: 600px) { .wide { width: 100% !important; } }</style>
</head>
<body>
<div class="preheader" style="display:none;max-height:0;overflow:hidden;mso-hide:all;">{{ campaign.preheader }}</div>
<p class="wide">Head test body</p>
</body>
</html>
"""


def _switch(page, pane: str) -> None:
    page.locator(f"#editor-tabs [data-pane={pane}]").click()
    expect(page.locator(f"#editor-tabs [data-pane={pane}]")).to_have_attribute("aria-selected", "true")


def _assert_head_kept(code: str) -> None:
    assert code.count("<title>{{ campaign.subject }} — зима</title>") == 1
    assert '<html lang="ru" xmlns:v="urn:schemas-microsoft-com:vml">' in code
    assert code.count('name="x-apple-disable-message-reformatting"') == 1
    assert code.lower().count("charset") == 1 and code.count('name="viewport"') == 1
    assert "@media" in code and "Head test body" in code
    assert "{{ campaign.preheader }}</div>" in code and "mso-hide:all" in code.replace(" ", "")
    head, _, body = code.partition("</head>")
    assert "<title>" not in body and "preheader" in body


def test_head_details_survive_switches_between_code_and_visual(signed_in, env, state):
    page = signed_in
    page.goto(state["url"])
    ready(page)
    _switch(page, "code")
    page.evaluate("html => window.altkraftEditor.cm().setValue(html)", HEAD_HTML)
    for _round in range(2):
        _switch(page, "visual")
        assert canvas(page).get_by_text("Head test body").count() == 1
        _switch(page, "code")
        _assert_head_kept(page.evaluate("window.altkraftEditor.cm().getValue()"))
    # Saved from the visual editor, opened again (from its project data): still there.
    _switch(page, "visual")
    save(page, 6)
    _assert_head_kept(current(env, state)["html"])
    page.goto(state["url"])
    ready(page)
    _switch(page, "code")
    _assert_head_kept(page.evaluate("window.altkraftEditor.cm().getValue()"))


def test_the_typical_newsletter_survives_visual_mode(signed_in, state, newsletter_html):
    """The shared fixture (table layout, head styles with a media query, Jinja in the <html>
    tag, an {% if %} block between rows, 42 links) through visual mode and back."""
    page = signed_in
    page.goto(state["url"])
    ready(page)
    _switch(page, "code")
    page.evaluate("html => window.altkraftEditor.cm().setValue(html)", newsletter_html)
    _switch(page, "visual")
    _switch(page, "code")
    code = page.evaluate("window.altkraftEditor.cm().getValue()")
    head, _, body = code.partition("</head>")
    assert "<html lang=\"{{ subscriber.language | default('en') }}\">" in head
    assert "<title>{{ campaign.subject }}</title>" in head
    assert "@media only screen and (max-width: 620px)" in head
    assert "{% if subscriber.custom.loyalty_tier == 'Gold' %}" in body and "{% endif %}" in body
    links = set(re.findall(r'href="(https?://[^"]+)"', newsletter_html))
    assert len(links) == 42 and links == set(re.findall(r'href="(https?://[^"]+)"', code))
