"""Pre-send checks against real components: SpamAssassin's spamd started on 127.0.0.1, a DNS
server on 127.0.0.1 (dnslib) publishing the domain's key and a listed link domain, a sample
composed as the senders compose it. GET /api/v1/messages/{id}/checks in the contract's shape;
findings warn, and block a campaign's start only past a line an administrator drew."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.campaigns import actions
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.deliverability import domains, presend, settings_store
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages import service as messages
from tests.browser import sign_in
from tests.campaigns.helpers import make_campaign, make_list
from tests.conftest import start_service
from tests.deliverability.conftest import key_records, make_env
from tests.deliverability.spamd import spamd  # noqa: F401  (fixture)

ACTOR = system_actor("test")
FROM = "news@shop.example.com"
TEXT = " ".join(["Our spring collection is here, with new colours and fabrics."] * 12)
GOOD = ("<html><body><h1>Spring</h1><p>" + TEXT + "</p><p><a href=\"https://shop.example.com/"
        "spring\">See it</a></p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"
        "</body></html>")


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, dns_server, spamd):  # noqa: F811
    yield from make_env(template_db, tmp_path_factory, dns_server, **{
        "deliverability.spamd_address": spamd.address,
        "deliverability.domain_blocklists": ["dbl.spamhaus.org"]})


@pytest.fixture(scope="module")
def domain(env, dns_server):
    with db.write(env.engine) as conn:
        domain_id = domains.add_domain(conn, ACTOR, env.settings, "shop.example.com")
        found = domains.get_domain(conn, domain_id)
    dns_server.serve({**key_records(found), "spammy-shop.com.dbl.spamhaus.org":
                      {"A": ["127.0.1.2"]}})
    domains.activate_published(env.engine, ACTOR, env.settings, domain_id, "rsa-sha256")
    return found


def _message(env, html: str = GOOD, **content) -> int:
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "Spring", subject="Spring is here",
                                                html=html, **content)
    return message_id


def _settings(env, **values):
    return settings_store.effective(env.settings, env.engine).replace(**values)


def _check(env, message_id: int, **values) -> dict[str, presend.Finding]:
    with db.read(env.engine) as conn:
        row = presend.message_version(conn, message_id)
    return {f.code: f for f in presend.check_version(_settings(env, **values), row, FROM)}


def test_the_api_answers_findings_in_the_contracts_shape(env, api, domain):
    message_id = _message(env)
    response = api("GET", f"/messages/{message_id}/checks?from_email={FROM}")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["message_id"] == message_id and body["version"] == 1
    assert body["from_email"] == FROM and body["blocked"] is False
    assert all(set(f) == {"code", "severity", "detail"} for f in body["findings"])
    codes = {f["code"]: f for f in body["findings"]}
    # spamd scored the composed message (the real service, its real rules)
    assert codes["spam_score"]["detail"].startswith("SpamAssassin: "), codes
    assert "points" in codes["spam_score"]["detail"]
    # a good message: signed and verified, a text part, small, an unsubscribe link
    for code in ("dkim_not_verified", "dkim_unchecked", "no_text_part", "gmail_clipping",
                 "no_unsubscribe_link", "link_domain_listed", "image_text_ratio"):
        assert code not in codes, codes[code]


def test_a_message_that_does_not_exist_is_404(api):
    assert api("GET", "/messages/999999/checks").status_code == 404


def test_a_missing_text_part_is_named(env, domain):
    message_id = _message(env, text="", text_follows_html=False)
    assert "no_text_part" in _check(env, message_id)


def test_a_message_over_gmails_clipping_line_is_named(env, domain):
    big = "<html><body>" + "".join(f"<p>Paragraph {i}: {TEXT}</p>" for i in range(160)) + \
        "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p></body></html>"
    found = _check(env, _message(env, big))
    assert "gmail_clipping" in found and "Gmail clips past 102 KB" in found["gmail_clipping"].detail


def test_an_image_mail_with_little_text_is_named(env, domain):
    html = ("<html><body><img src=\"https://shop.example.com/a.png\" width=\"600\" height=\"400\">"
            "<img src=\"https://shop.example.com/b.png\" width=\"600\" height=\"400\">"
            "<p>Sale!</p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></body></html>")
    found = _check(env, _message(env, html))
    assert "image_text_ratio" in found and "2 images" in found["image_text_ratio"].detail


def test_a_link_to_a_listed_domain_is_named(env, domain):
    html = GOOD.replace("https://shop.example.com/spring", "https://www.spammy-shop.com/x")
    found = _check(env, _message(env, html))
    assert "link_domain_listed" in found
    assert "spammy-shop.com is listed on dbl.spamhaus.org" in found["link_domain_listed"].detail


def test_a_message_without_an_unsubscribe_link_is_named(env, domain):
    html = GOOD.replace("<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>", "")
    assert "no_unsubscribe_link" in _check(env, _message(env, html))


def test_a_from_domain_without_a_key_is_not_signed(env, domain):
    with db.read(env.engine) as conn:
        row = presend.message_version(conn, _message(env))
    found = {f.code: f for f in presend.check_version(_settings(env), row, "news@other.example.org")}
    assert "dkim_not_verified" in found and "not DKIM-signed" in found["dkim_not_verified"].detail


def test_spamd_not_running_is_said_plainly(env, domain):
    found = _check(env, _message(env), deliverability__spamd_address="127.0.0.1:9")
    assert found["spam_score_unavailable"].severity == "info"
    assert "not installed or not running" in found["spam_score_unavailable"].detail
    found = _check(env, _message(env), deliverability__spamd_address="")
    assert "switched off" in found["spam_score_unavailable"].detail


def test_findings_warn_and_block_only_where_a_line_is_drawn(env, domain):
    message_id = _message(env, text="", text_follows_html=False)
    assert _check(env, message_id)["no_text_part"].severity == "warning"
    found = _check(env, message_id, deliverability__presend_block_codes=["no_text_part"])
    assert found["no_text_part"].severity == "block"
    found = _check(env, message_id, deliverability__presend_block_spam_score=0.1)
    assert found["spam_score"].severity == "block"


def test_a_campaign_past_the_line_does_not_start(env, domain):
    list_id, _ids = make_list(env, "Spring readers", [{"email": "reader@example.org"}])
    campaign_id = make_campaign(env, _message(env, text="", text_follows_html=False), [list_id],
                                from_email=FROM)
    strict = _settings(env, deliverability__presend_block_codes=["no_text_part"],
                       smtp__relays=[{"host": "127.0.0.1", "port": 9}])
    with pytest.raises(ServiceError) as refused:
        actions.perform(ACTOR, strict, campaign_id, "start", env.engine)
    assert "no_text_part" in refused.value.message and "Nothing was sent" in refused.value.message
    with db.read(env.engine) as conn:
        assert campaigns.get_campaign(conn, campaign_id)["state"] == "draft"


def test_each_split_test_variant_is_checked_and_a_bad_one_stops_the_start(env, domain):
    # Variant A sends the good message; variant B another message without a text part.
    list_id, _ids = make_list(env, "Split readers", [{"email": "split@example.org"}])
    campaign_id = make_campaign(env, _message(env), [list_id], from_email=FROM, split_test={
        "variants": [{"subject": "Spring"}, {"message_id": _message(env, text="", text_follows_html=False)}],
        "test_percent": 50, "metric": "opens", "wait_hours": 1})
    with db.read(env.engine) as conn:
        found = presend.campaign_message(conn, campaign_id)
    strict = _settings(env, deliverability__presend_block_codes=["no_text_part"],
                       smtp__relays=[{"host": "127.0.0.1", "port": 9}])
    findings = presend.check_campaign(strict, found)
    assert [f.detail.split(":")[0] for f in findings if f.code == "no_text_part"] == ["variant B"]
    assert {f.detail.split(":")[0] for f in findings if f.code == "spam_score"} == {"variant A", "variant B"}
    with pytest.raises(ServiceError) as refused:
        actions.perform(ACTOR, strict, campaign_id, "start", env.engine)
    assert "no_text_part: variant B" in refused.value.message
    with db.read(env.engine) as conn:
        assert campaigns.get_campaign(conn, campaign_id)["state"] == "draft"


@pytest.fixture(scope="module")
def viewer(env):
    client = env.app.test_client()
    env.login(client, env.user("Viewer"))
    return client


def test_the_editors_tab_gets_translated_findings(env, domain, viewer):
    message_id = _message(env, text="", text_follows_html=False)
    page = viewer.get(f"/messages/{message_id}")
    assert b'id="pane-checks"' in page.data and b"presend.js" in page.data
    answer = viewer.get(f"/deliverability/messages/{message_id}/checks?from_email={FROM}",
                        headers={"Accept-Language": "ru"})
    assert answer.status_code == 200
    found = {f["code"]: f for f in answer.get_json()["findings"]}
    assert found["no_text_part"]["title"] == "Нет текстовой части"
    assert found["no_text_part"]["severity_label"] == "предупреждение"


def test_the_campaign_page_offers_the_checks_of_its_message(env, domain, viewer):
    list_id, _ids = make_list(env, "Page readers", [{"email": "page@example.org"}])
    campaign_id = make_campaign(env, _message(env), [list_id], from_email=FROM)
    page = viewer.get(f"/campaigns/{campaign_id}")
    assert b'id="presend"' in page.data
    answer = viewer.get(f"/deliverability/campaigns/{campaign_id}/checks").get_json()
    assert answer["from_email"] == FROM and not answer["blocked"]
    assert "spam_score" in {f["code"] for f in answer["findings"]}


@pytest.fixture(scope="module")
def service(env, dns_server, spamd):  # noqa: F811
    server = start_service(env, extra_env={
        "ALTKRAFT_DELIVERABILITY__NAMESERVERS": json.dumps([dns_server.address]),
        "ALTKRAFT_DELIVERABILITY__SPAMD_ADDRESS": spamd.address,
        "ALTKRAFT_DELIVERABILITY__DOMAIN_BLOCKLISTS": json.dumps(["dbl.spamhaus.org"])})
    yield server
    server.stop()


@pytest.fixture()
def browser_context_args() -> dict:
    return {"locale": "en-US", "viewport": {"width": 390, "height": 844}}


@pytest.mark.browser
def test_the_editors_tab_lists_the_findings_in_the_browser(env, domain, service, page):
    message_id = _message(env, GOOD.replace("https://shop.example.com/spring",
                                            "https://www.spammy-shop.com/x"))
    sign_in(page, service.url, env.user("Editor"))
    page.goto(f"{service.url}/messages/{message_id}")
    expect(page.locator("#editor-tabs [aria-selected=true]")).to_have_count(1)   # editor ready
    tab = page.get_by_role("tab", name="Pre-send checks")
    tab.focus()
    page.keyboard.press("Enter")
    pane = page.locator("#pane-checks")
    pane.get_by_label("From address").fill(FROM)
    pane.get_by_role("button", name="Run the checks").click()
    findings = pane.locator(".presend-findings li")
    expect(pane.locator('li[data-code="link_domain_listed"]')).to_contain_text(
        "spammy-shop.com is listed on dbl.spamhaus.org", timeout=60_000)
    expect(pane.locator('li[data-code="spam_score"]')).to_contain_text("SpamAssassin: ")
    assert findings.count() >= 2
