"""Browser fixtures for every domain: Debian's Chromium driven by Playwright (sync API).

Use them in a test marked ``@pytest.mark.browser``:

    @pytest.mark.browser
    def test_something(page, live_server):
        page.goto(live_server.url + "/login")

``browser`` is one headless Chromium per test session; ``page`` is a fresh context (own
cookies, English UI unless the test asks otherwise) per test. When a browser test fails, the
page's screenshot and HTML are saved as test-artifacts/<test name>.png / .html.
``save_artifacts(page, name)`` saves the same on purpose (e.g. a screenshot of a good page).
Chromium comes from Debian (`make system-deps`, or
`DEBIAN_FRONTEND=noninteractive apt-get install -y chromium`); Playwright never downloads one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("AKTEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(os.environ.get("AKTEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")
VIEWPORT = {"width": 1280, "height": 800}


def _ensure_chromium() -> None:
    """Installs Debian's chromium when it is missing and we may (root, apt-get present)."""
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=environment, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       env=environment, check=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` "
                    "(apt-get install chromium) as root", pytrace=False)


def sign_in(page, base_url: str, user: dict, landing: str = "/") -> None:
    """Signs `user` ({"email", "password"}) in through the login form, in whatever language
    the page speaks; waits for the dashboard (or `landing`: a second factor's page)."""
    page.goto(base_url + "/login")
    form = page.locator("form:has(input[name=password])")
    form.locator("input[name=email]").fill(user["email"])
    form.locator("input[name=password]").fill(user["password"])
    form.locator("button[type=submit]").click()
    page.wait_for_url(base_url + landing)


def setup_link(server) -> str:
    """The one-time link that `altkraft run` prints on a database without users."""
    found = re.search(r"create the administrator at (\S+/setup/\S+)", server.log.read_text())
    assert found, server.log.read_text()
    return found.group(1)


def save_artifacts(page, name: str) -> Path:
    """Saves page screenshot + HTML under test-artifacts/; returns the PNG's path."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150]
    png = ARTIFACTS / f"{stem}.png"
    page.screenshot(path=str(png), full_page=True)
    (ARTIFACTS / f"{stem}.html").write_text(page.content(), encoding="utf-8")
    return png


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    _ensure_chromium()
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture()
def browser_context_args() -> dict:
    """Override in a test module to change locale, viewport, ... of `page`."""
    return {"locale": "en-US", "viewport": VIEWPORT}


@pytest.fixture()
def new_page(request, browser, browser_context_args):
    """A factory of pages, each in its own context (another signed-in user, another locale).
    Every page it makes is saved by the failure hook."""
    contexts = []
    request.node._browser_pages = []

    def make(**overrides):
        context = browser.new_context(**{**browser_context_args, **overrides})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        request.node._browser_pages.append(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture()
def page(new_page):
    return new_page()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for index, page in enumerate(getattr(item, "_browser_pages", [])):
        try:
            if not page.is_closed():
                suffix = f"-{index}" if index else ""
                save_artifacts(page, f"FAILED-{item.nodeid}{suffix}")
        except Exception as exc:  # noqa: BLE001 - a broken page must not hide the real failure
            report.sections.append(("browser artifacts", f"could not save: {exc}"))

