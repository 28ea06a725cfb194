"""The public archive in real Chromium against the real service: the list's page (also at
390 px, and in Russian), its feed link, a click through to the archived copy — the message for
a placeholder recipient, no unsubscribe link, nothing in it runs (the sandbox CSP) — and a
forged address answered 404."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.audience import lists
from tests.browser import save_artifacts
from tests.conftest import start_service

from .helpers import ACTOR, make_list, make_message
from .test_archive import env  # noqa: F401  (the module's world: a sink as relay)

pytestmark = pytest.mark.browser

HTML = """<html><body>
<h1 id="headline">Winter news for {{ subscriber.first_name }}</h1>
<p><a href="https://shop.example.com/winter">Winter sale</a></p>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="" onerror="document.title='ran'">
<script>document.title = 'ran';</script>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


@pytest.fixture(scope="module")
def service(env):  # noqa: F811
    list_id, _ = make_list(env, "Winter letters", [{"email": "wl@example.org", "first_name": "Wl"}])
    with db.write(env.engine) as conn:
        lists.update_list(conn, ACTOR, list_id, archive_slug="winter")
    message_id = make_message(env, html=HTML, subject="Winter news")
    sent_id = _sent_with(env, list_id, message_id)
    server = start_service(env)
    yield server, sent_id
    server.stop()


def _sent_with(env, list_id, message_id) -> int:  # noqa: F811
    from altkraft_onprem.campaigns import jobs
    from altkraft_onprem.campaigns import service as campaigns

    from .helpers import make_campaign
    campaign_id = make_campaign(env, message_id, [list_id], name="Winter issue", archive=True)
    with db.write(env.engine) as conn:
        campaigns.start(conn, ACTOR, env.settings, campaign_id)
    with env.app.app_context():
        jobs.run_campaign(env.settings, env.engine, campaign_id)
    return campaign_id


def test_the_archive_page_leads_to_the_archived_copy(service, page):
    server, _ = service
    page.goto(server.url + "/archive/winter")
    expect(page.get_by_role("heading", name="Winter letters")).to_be_visible()
    expect(page.get_by_role("link", name="Subscribe to this archive's feed (Atom)")).to_have_attribute(
        "href", server.url + "/archive/winter/feed.atom")
    save_artifacts(page, "archive-index")
    with page.expect_response(lambda r: "/archive/winter/" in r.url) as answer:
        page.get_by_role("link", name="Winter issue").click()
    response = answer.value
    assert response.status == 200
    assert response.headers["content-security-policy"].startswith("sandbox")
    expect(page.locator("#headline")).to_have_text("Winter news for [subscriber.first_name]")
    expect(page.get_by_role("link", name="Winter sale")).to_have_attribute(
        "href", "https://shop.example.com/winter")
    expect(page.get_by_role("link", name="Unsubscribe")).to_have_count(0)
    assert page.title() != "ran"            # neither the script nor the handler ran
    save_artifacts(page, "archive-copy")


def test_the_archive_page_fits_a_phone_and_speaks_russian(service, new_page):
    server, _ = service
    page = new_page(viewport={"width": 390, "height": 800}, locale="ru-RU",
                    extra_http_headers={"Accept-Language": "ru"})
    page.goto(server.url + "/archive/winter")
    expect(page.get_by_role("link", name="Подписаться на ленту архива (Atom)")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_forged_archive_address_is_404(service, page):
    server, _ = service
    assert page.goto(server.url + "/archive/winter/" + "A" * 32).status == 404
    assert page.goto(server.url + "/archive/no-such-archive").status == 404
