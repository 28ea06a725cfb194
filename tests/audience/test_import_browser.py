"""Paste from the clipboard into the Import page in real Chromium (against `altkraft run`,
whose job consumer runs the import) and see the report."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import subscribers
from tests.browser import save_artifacts
from tests.conftest import start_service

from .conftest import People

pytestmark = pytest.mark.browser

PASTED = ("E-mail\tИмя\tФамилия\tТелефон\n"
          "olga@browser.example\tОльга\tПетрова\t+7 916 000-11-22\n"
          "not an address\tX\tY\t\n"
          "ivan@browser.example\tИван\tСидоров\t\n")


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env)
    yield server
    server.stop()


@pytest.fixture()
def browser_context_args() -> dict:
    return {"locale": "en-US", "viewport": {"width": 1280, "height": 900},
            "permissions": ["clipboard-read", "clipboard-write"]}


def sign_in(env, service, page) -> None:
    user = env.user("Editor")
    page.goto(service.url + "/login")
    page.get_by_label("Email").fill(user["email"])
    page.get_by_label("Password").fill(user["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(service.url + "/")


def test_paste_clipboard_preview_and_report(env, service, page):
    People(env).list("Browser list")
    sign_in(env, service, page)

    page.goto(service.url + "/audience/import/")
    # A real clipboard paste: put the rows on the clipboard, then Ctrl+V into the text area.
    page.evaluate("text => navigator.clipboard.writeText(text)", PASTED)
    page.locator("#paste").click()
    page.keyboard.press("Control+V")
    assert "olga@browser.example" in page.locator("#paste").input_value()
    page.get_by_label("Browser list").check()
    page.get_by_role("button", name="Preview").click()

    grid = page.locator("#preview-grid")
    grid.wait_for()
    assert "Ольга" in grid.inner_text()
    assert page.locator('select[data-column="E-mail"]').input_value() == "email"
    assert page.locator('select[data-column="Телефон"]').input_value() == "phone"
    save_artifacts(page, "import-preview")
    page.get_by_role("button", name="Start import").click()

    page.wait_for_url("**/audience/import/*")
    page.locator('#import-progress[data-state="finished"]').wait_for(timeout=30_000)
    assert page.locator('[data-count="added"]').inner_text() == "2"
    assert page.locator('[data-count="invalid"]').inner_text() == "1"
    assert page.locator("#import-state").inner_text() == "Finished"
    # Counts take the plural form of their number (not "1 errors so far").
    assert page.locator("#import-errors").inner_text() == "1 error so far"
    assert page.locator("#import-rows").inner_text() == "3 rows"
    save_artifacts(page, "import-report")
    with page.expect_download() as download:
        page.locator("#rejected-link").click()
    body = open(download.value.path(), encoding="utf-8-sig").read()
    assert "3,,email:" in body


def test_a_file_read_in_the_wrong_encoding_is_read_again_in_the_chosen_one(env, service, page, tmp_path):
    """Issue 15 item 4: the preview offers the encoding and re-reads the uploaded file. A DOS
    (cp866) file, which detection cannot tell from the Windows and KOI8 pages, comes out right
    once "DOS 866" is chosen, and the import uses the choice."""
    People(env).list("Encoding list")
    sign_in(env, service, page)

    upload = tmp_path / "dos.txt"
    upload.write_bytes("email;Имя;Фамилия\r\nzoya@dos.example;Зоя;Щукина\r\n".encode("cp866"))
    page.goto(service.url + "/audience/import/")
    page.locator("#file").set_input_files(str(upload))
    page.get_by_label("Encoding list").check()
    page.get_by_role("button", name="Preview").click()
    page.locator("#preview-grid").wait_for()
    assert "Зоя" not in page.locator("#preview-grid").inner_text()

    page.get_by_label("Encoding", exact=True).select_option("cp866")
    page.get_by_role("button", name="Read the file again").click()
    grid = page.locator("#preview-grid")
    grid.wait_for()
    assert "Зоя" in grid.inner_text() and "Щукина" in grid.inner_text()
    assert page.get_by_label("Encoding", exact=True).input_value() == "cp866"
    assert page.locator('select[data-column="Имя"]').input_value() == "first_name"
    save_artifacts(page, "import-encoding-chosen")
    page.get_by_role("button", name="Start import").click()
    page.locator('#import-progress[data-state="finished"]').wait_for(timeout=30_000)
    assert page.locator('[data-count="added"]').inner_text() == "1"
    with db.read(env.engine) as conn:
        person = subscribers.find_by_email(conn, "zoya@dos.example")
    assert (person["first_name"], person["last_name"]) == ("Зоя", "Щукина")
