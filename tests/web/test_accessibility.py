"""Every page of the UI and every public page against axe-core's WCAG 2.1 A and AA rules, in
real Chromium against the real `altkraft run`: in English and in Russian, at 1366 px and at
390 px (where no page may scroll sideways), signed in as each built-in role where the page
differs from what another role already showed; and every focusable control's focus indicator
at 3:1 against its background.

The pages are found, not listed: the crawl starts at the dashboard and follows the links of
every page it checks (one URL per route), and the public pages are reached the way people
reach them (the subscribe form, the links in a campaign email, the first-run setup link). A
test then fails for any GET route that is a page but was never reached, so a new page gets
checked as soon as something links to it (or the world below learns to make its data).

One audit (a module fixture) feeds all the assertions: one browser context per role and
language, one page reused for every URL, both widths by resizing the same document.
"""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from email import message_from_bytes, policy

import pyotp
import pytest

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import BUILTIN_ROLES
from altkraft_onprem.audience import fields as audience_fields
from altkraft_onprem.audience import links as audience_links
from altkraft_onprem.audience import lists, segments, subscribers
from altkraft_onprem.automation import webhooks, workflows
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.deliverability import domains
from altkraft_onprem.inbound import intake
from altkraft_onprem.messages import service as messages
from altkraft_onprem.messages.starters import STARTERS
from tests.a11y import (
    DESKTOP,
    PHONE,
    Pages,
    axe_violations,
    charts,
    describe,
    links,
    settled,
    sideways,
    weak_focus,
)
from tests.browser import ARTIFACTS, setup_link, sign_in
from tests.campaigns.helpers import ACTOR, record_events, sending_settings, start_sending_service
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

PEOPLE = [{"email": f"reader{n}@example.org", "first_name": name, "last_name": "Reader", "city": "Oslo"}
          for n, name in enumerate(["Anna", "Boris", "Clara", "Dmitri"])]
LANGUAGES = {"en": "en-US", "ru": "ru-RU"}
WIDTHS = {"1366": DESKTOP, "390": PHONE}
DSN = (b"From: MAILER-DAEMON@mx.example.org\r\nTo: bounce@bounces.example.com\r\nSubject: Undelivered\r\n"
       b"Content-Type: text/plain\r\n\r\nThe mail to reader9@example.org could not be delivered.\r\n")


@pytest.fixture(scope="module")
def world(env, module_smtp_sink):
    """Something on every page: lists, people, a field, a segment, a message (the newsletter
    starter) with two versions, a campaign sent through the SMTP sink with opens and clicks, an
    empty draft, a webhook, a workflow, a sending domain, an inbound message. No user yet: the
    first-run setup page is checked before one exists."""
    settings, _ = sending_settings(env, module_smtp_sink)
    starter = STARTERS[0]
    with db.write(env.engine) as conn:
        news = lists.create_list(conn, ACTOR, "Newsletter", visibility="public", optin="double",
                                 description="Monthly news")
        lists.update_list(conn, ACTOR, news, archive_slug="news")
        lists.create_list(conn, ACTOR, "Partners")
        audience_fields.create_field(conn, ACTOR, "loyalty_tier", "Loyalty tier")
        people = [subscribers.create_subscriber(conn, ACTOR, person, list_ids=[news], status="confirmed")
                  for person in PEOPLE]
        segments.create_segment(conn, ACTOR, "People in Oslo", {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": "Oslo"}]})
        message_id, _ = messages.create_message(conn, ACTOR, "Spring newsletter", subject=starter.subject,
                                                preheader=starter.preheader, html=starter.html())
        messages.save_version(conn, ACTOR, message_id, subject=starter.subject + "!", html=starter.html())
        campaign_id = campaigns.create_campaign(conn, ACTOR, name="Spring newsletter", message_id=message_id,
                                                list_ids=[news], from_email="news@example.com", archive=True)
        draft_message, _ = messages.create_message(conn, ACTOR, "Draft", subject="Soon", html=(
            '<p>Soon: <a href="https://example.com/soon">more</a></p>'))   # a link for per-link UTM
        draft = campaigns.create_campaign(conn, ACTOR, name="Summer draft", message_id=draft_message,
                                          list_ids=[news], from_email="news@example.com")
        webhooks.create(conn, ACTOR, settings, url="https://hooks.example.com/altkraft",
                        events=["subscriber.created"])
        workflows.create(conn, ACTOR, {"name": "Welcome", "trigger": {"type": "manual"}, "graph": {
            "start": "wait", "edges": [], "nodes": [{"id": "wait", "type": "wait",
                                                     "config": {"duration": {"days": 1}}}]}})
        domains.add_domain(conn, ACTOR, settings, "example.com")
        intake.store(conn, DSN, source="smtp", rcpt="bounce@bounces.example.com")
        campaigns.start(conn, ACTOR, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    with db.read(env.engine) as conn:
        version_id = campaigns.get_campaign(conn, campaign_id)["version_id"]
    record_events(env, [{"kind": kind, "at": utcnow(), "campaign_id": campaign_id, "subscriber_id": person,
                         "version_id": version_id, "link_index": 0 if kind == "click" else None}
                        for kind in ("open", "click") for person in people[:3]])
    return {"list": news, "people": people, "sink": module_smtp_sink, "draft": draft}


@pytest.fixture(scope="module")
def service(env, world):
    server = start_sending_service(env, world["sink"])
    yield server
    server.stop()


def content_key(html: str) -> str:
    """What a role sees in the page's <main> (the CSRF token aside): equal keys, equal pages."""
    html = re.sub(r'name="csrf_token" value="[^"]*"', "", html)
    found = re.search(r"<main.*</main>", html, re.S)
    return hashlib.sha256((found.group(0) if found else html).encode()).hexdigest()


class Audit:
    """What the audit found: (role, language, width, page) -> axe violations; (role, language,
    page) -> sideways scroll at 390 px; page -> controls with a weak focus indicator."""

    def __init__(self, env, service, browser):
        self.env, self.service, self.browser = env, service, browser
        self.origin = service.url
        self.pages = Pages(env.app)
        self.violations: dict[tuple[str, str, str, str], list[dict]] = {}
        self.scrolls: dict[tuple[str, str, str], int] = {}
        self.focus: dict[str, list[str]] = {}
        self.charts: dict[str, list[dict]] = {}

    def context(self, language: str):
        # The CSP set aside: axe is evaluated in the page, and a message's own HTML (web copy,
        # archived copy) comes under a sandbox without scripts, where nothing could run.
        made = self.browser.new_context(locale=LANGUAGES[language], viewport=DESKTOP, bypass_csp=True)
        made.set_default_timeout(15_000)
        return made

    def check(self, page, role: str, language: str, label: str, widths=tuple(WIDTHS), *,
              focus: bool = False) -> None:
        """axe at the widths asked (and the sideways scroll at 390 px) on the page as it is."""
        for width in widths:
            page.set_viewport_size(WIDTHS[width])
            settled(page)
            self.violations[(role, language, width, label)] = axe_violations(page)
            if width == "390":
                self.scrolls[(role, language, label)] = sideways(page)
            elif focus:
                self.focus[label] = weak_focus(page)
                self.charts[label] = charts(page)
        page.set_viewport_size(DESKTOP)

    def open(self, page, url: str) -> bool:
        """Goes to `url`; False (and the route noted) when it is not an HTML page."""
        endpoint = self.pages.endpoint(url)
        try:
            answer = page.goto(url)
        except Exception as exc:  # noqa: BLE001 - a download: not a page
            if "Download is starting" not in str(exc):
                raise
            self.pages.not_html.add(endpoint)
            return False
        if answer is None or answer.status != 200:
            return False
        if not answer.headers.get("content-type", "").startswith("text/html"):
            self.pages.not_html.add(endpoint)
            return False
        page.wait_for_load_state("networkidle")
        return True

    def crawl(self, page, language: str) -> None:
        """From the dashboard, every page the links lead to, one URL per route."""
        queue, seen = [self.origin + "/"], set()
        while queue:
            url = queue.pop(0)
            endpoint = self.pages.endpoint(url)
            if endpoint is None or endpoint in seen:
                continue
            seen.add(endpoint)
            if not self.open(page, url):
                continue
            self.pages.visited.setdefault(endpoint, url)
            self.check(page, "Administrator", language, endpoint, focus=language == "en")
            queue.extend(link for link in links(page, self.origin) if link not in queue)


@pytest.fixture(scope="module")
def audit(env, world, service, browser) -> Audit:
    result = Audit(env, service, browser)
    for language in LANGUAGES:
        with result.context(language) as ctx:
            first_run(result, ctx.new_page(), language)
    users = {role: env.user(role) for role in BUILTIN_ROLES}
    admin = result.admin = users.pop("Administrator")
    shown = {}      # (language, content key) -> the role that showed it first
    for language in LANGUAGES:
        with result.context(language) as ctx:
            public_pages(result, ctx.new_page(), language, world, admin)
        with result.context(language) as ctx:
            web_copy(result, ctx.new_page(), language, world)
        with result.context(language) as ctx:
            two_factor(result, ctx, language, env)
        with result.context(language) as ctx:
            page = ctx.new_page()
            sign_in(page, service.url, admin)
            result.crawl(page, language)
            forms(result, page, language)
            for url in result.pages.visited.values():
                shown[(language, content_key(page.request.get(url).text()))] = "Administrator"
    # Each role in English at 1366 px and in Russian at 390 px: its dashboard (the menu is the
    # role's), its 403 page, and every page whose content no role before it showed.
    for role, user in users.items():
        for language, width in (("en", "1366"), ("ru", "390")):
            with result.context(language) as ctx:
                role_pages(result, ctx.new_page(), role, language, width, user, shown)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "accessibility.json").write_text(json.dumps({
        "axe": {" / ".join(key): [f"{v['id']} x{len(v['nodes'])}" for v in value]
                for key, value in sorted(result.violations.items())},
        "sideways_px": {" / ".join(key): value for key, value in sorted(result.scrolls.items())},
        "weak_focus": result.focus}, indent=1, ensure_ascii=False))
    return result


def first_run(result: Audit, page, language: str) -> None:
    """Before any user exists: the sign-in page says setup is pending; the setup link's page."""
    page.goto(result.origin + "/login")
    result.check(page, "anyone", language, "access.login (setup pending)")
    page.goto(setup_link(result.service))
    result.pages.visited["access.setup"] = page.url
    result.check(page, "anyone", language, "access.setup")


def campaign_email(world: dict) -> str:
    email = message_from_bytes(world["sink"].by_recipient(PEOPLE[1]["email"])[0].raw, policy=policy.default)
    return email.get_body(("html",)).get_content()


def public_pages(result: Audit, page, language: str, world: dict, admin: dict) -> None:
    """The pages subscribers and new users see, reached as they reach them."""
    origin = result.origin
    page.goto(origin + "/login")
    result.pages.visited["access.login"] = page.url
    result.check(page, "anyone", language, "access.login")
    page.locator("input[name=email]").fill(admin["email"])
    page.locator("input[name=password]").fill("not the password")
    page.locator("form button[type=submit]").click()
    result.check(page, "anyone", language, "access.login (wrong password)")
    page.goto(f"{origin}/p/subscribe/{world['list']}")
    result.pages.visited["audience_public.subscribe"] = page.url
    result.check(page, "anyone", language, "audience_public.subscribe")
    page.locator("input[name=email]").fill("not an address")
    page.locator("form button[type=submit]").click()
    result.check(page, "anyone", language, "audience_public.subscribe (error)")
    page.locator("input[name=email]").fill(f"new-{uuid.uuid4().hex[:6]}@example.org")
    page.locator("form button[type=submit]").click()
    page.locator("#public-result").wait_for()    # sent once the browser solved the robot check
    result.check(page, "anyone", language, "audience_public.subscribe (done)")
    settings = result.env.settings.replace(server__public_url=origin)
    page.goto(audience_links.confirm_url(settings, world["people"][0], world["list"]))
    result.pages.visited["audience_public.confirm"] = page.url
    result.check(page, "anyone", language, "audience_public.confirm")
    unsubscribe = re.search(r'href="([^"]*/p/u/[^"]+)"', campaign_email(world))
    assert unsubscribe, "the campaign email links to its unsubscribe page"
    page.goto(origin + "/p/u/" + unsubscribe.group(1).rsplit("/p/u/", 1)[1])
    result.pages.visited["audience_public.unsubscribe_page"] = page.url
    result.check(page, "anyone", language, "audience_public.unsubscribe_page")
    page.goto(audience_links.preferences_url(settings, world["people"][2]))
    result.pages.visited["audience_public.preferences"] = page.url
    result.check(page, "anyone", language, "audience_public.preferences")
    page.goto(origin + "/api/v1/docs")
    page.wait_for_load_state("networkidle")
    result.pages.visited["api.docs_page"] = page.url
    result.check(page, "anyone", language, "api.docs_page")


def web_copy(result: Audit, page, language: str, world: dict) -> None:
    """The email's web copy, and the list's public archive with the campaign's archived copy."""
    view = re.search(r'href="([^"]*/p/view/[^"]+)"', campaign_email(world))
    assert view, "the campaign email links to its web copy"
    page.goto(result.origin + "/p/view/" + view.group(1).rsplit("/p/view/", 1)[1])
    result.pages.visited["webview.view_in_browser"] = page.url
    result.check(page, "anyone", language, "webview.view_in_browser")
    page.goto(result.origin + "/archive/news")
    result.pages.visited["archive.index"] = page.url
    result.check(page, "anyone", language, "archive.index")
    copy = next(link for link in links(page, result.origin) if result.pages.endpoint(link) == "archive.copy")
    page.goto(copy)
    result.pages.visited["archive.copy"] = page.url
    result.check(page, "anyone", language, "archive.copy")


def two_factor(result: Audit, ctx, language: str, env) -> None:
    """Two-factor sign-in: a role that requires it, a user who enrols at sign-in (the QR code
    page, then the recovery codes), and the code page at the next sign-in."""
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, ACTOR, f"Secured {language}", ["dashboard:read"])
        access.set_role_requirement(conn, ACTOR, role_id, True)
        email = f"secured-{language}@example.com"
        access.create_user(conn, ACTOR, email, PASSWORD, role_id)
    user = {"email": email, "password": PASSWORD}
    page = ctx.new_page()
    sign_in(page, result.origin, user, landing="/login/enrol")
    result.pages.visited["access.sign_in_enrol"] = page.url
    result.check(page, "anyone", language, "access.sign_in_enrol")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.locator("input[name=code]").fill(pyotp.TOTP(secret).now())
    page.locator("form:has(input[name=code]) button[type=submit]").click()
    page.locator("#recovery-codes").wait_for()
    result.check(page, "anyone", language, "access.sign_in_enrol (recovery codes)")
    ctx.clear_cookies()
    sign_in(page, result.origin, user, landing="/login/code")
    result.pages.visited["access.sign_in_code"] = page.url
    result.check(page, "anyone", language, "access.sign_in_code")


def forms(result: Audit, page, language: str) -> None:
    """Pages that answer a form rather than a link: the import preview, the import's undo and
    its result; and the 404 page."""
    page.goto(result.origin + "/audience/import/")
    page.locator("textarea").first.fill("email,first_name\nnew1@example.org,Eva\nnew2@example.org,Fred\n")
    page.locator("form:has(textarea) button[type=submit]").first.click()
    page.wait_for_load_state("networkidle")
    result.check(page, "Administrator", language, "importer.preview")
    page.locator("#start-button").click()
    page.wait_for_url(re.compile(r".*/audience/import/\d+$"))
    page.wait_for_load_state("networkidle")
    result.pages.visited["importer.show"] = page.url
    result.check(page, "Administrator", language, "importer.show")
    page.locator("#undo-link").click()              # once the import has ended: its dry run, then its result
    page.wait_for_url(re.compile(r".*/audience/import/\d+/undo$"))
    result.pages.visited["importer.undo_check"] = page.url
    result.check(page, "Administrator", language, "importer.undo_check")
    page.locator("#undo-preview button[type=submit]").click()
    page.locator("#import-undone").wait_for()
    result.check(page, "Administrator", language, "importer.show (undone)")
    page.goto(result.origin + "/no-such-page")
    result.check(page, "Administrator", language, "404")


def role_pages(result: Audit, page, role: str, language: str, width: str, user: dict, shown: dict) -> None:
    sign_in(page, result.origin, user)
    result.check(page, role, language, "web.dashboard", (width,))
    permissions = BUILTIN_ROLES[role]
    for endpoint, url in result.pages.visited.items():
        if endpoint == "web.dashboard" or not result.pages.allowed(endpoint, permissions) \
                or result.pages.permission(endpoint) == "public":
            continue
        answer = page.request.get(url)
        key = (language, content_key(answer.text()))
        if answer.status != 200 or shown.get(key, role) != role:
            continue
        shown[key] = role
        if result.open(page, url):
            result.check(page, role, language, endpoint, (width,))
    if "users:manage" not in permissions:
        page.goto(result.origin + "/users")
        result.check(page, role, language, "403", (width,))


def table(found: dict) -> str:
    return "\n".join(f"  {' / '.join(key)}: {describe(value)}" for key, value in sorted(found.items()) if value)


def test_every_page_passes_axe_wcag_21_aa(audit):
    failing = {key: value for key, value in audit.violations.items() if value}
    assert not failing, f"{len(failing)} of {len(audit.violations)} page checks fail:\n{table(failing)}"


def test_no_page_scrolls_sideways_at_390_px(audit):
    wide = {key: width for key, width in audit.scrolls.items() if width > 0}
    assert not wide, "\n".join(f"  {' / '.join(key)}: {width} px too wide" for key, width in sorted(wide.items()))


def test_every_focus_indicator_has_3_to_1(audit):
    weak = {key: value for key, value in audit.focus.items() if value}
    assert not weak, "\n".join(f"  {key}: {', '.join(value[:6])}" for key, value in sorted(weak.items()))


def test_every_page_was_reached(audit):
    missing = audit.pages.missing()
    assert not missing, ("pages the crawl never reached (link them, or make their data in this module's "
                         f"world): {missing}")


def test_every_role_and_language_was_checked(audit):
    assert {key[1] for key in audit.violations} == set(LANGUAGES)
    assert {key[0] for key in audit.violations} >= set(BUILTIN_ROLES)
    assert len(audit.pages.visited) >= 40


def test_every_chart_has_a_name_and_its_figures_in_a_table(audit):
    found = [(page, chart) for page, items in audit.charts.items() for chart in items]
    assert len({chart["chart"] for _, chart in found}) >= 6       # the report's four, cohorts, engagement
    drawn = [(page, chart) for page, chart in found if not chart["empty"]]
    assert drawn, "the sent campaign's report draws charts"
    for page, chart in drawn:
        assert chart["role"] == "img" and chart["name"], (page, chart)
        assert chart["table"], (page, chart)
    for page, chart in found:
        if chart["empty"]:
            assert chart["text"] == "No data yet.", (page, chart)


def test_a_chart_without_data_says_so(audit, world):
    with audit.context("ru") as ctx:
        page = ctx.new_page()
        sign_in(page, audit.origin, audit.admin)
        page.goto(f"{audit.origin}/reports/campaigns/{world['draft']}")
        empty = charts(page)
    assert {chart["chart"] for chart in empty} == {"timeline", "reads", "clients", "devices"}
    assert all(chart["empty"] and chart["text"] == "Данных пока нет." for chart in empty), empty

