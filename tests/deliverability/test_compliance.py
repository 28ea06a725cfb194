"""The bulk-sender compliance panel, each line computed against real components: a DNS server
on 127.0.0.1 (dnslib) serving the domain's records, an SMTP relay offering STARTTLS with a
certificate the service trusts (aiosmtpd), the running service answering its own one-click
unsubscribe POST, complaints in inbound's table — GET /api/v1/deliverability/compliance in the
contract's shape, and the lines that fail when something is wrong."""
from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import insert, select

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns.models import campaigns, deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.deliverability import compliance, domains, settings_store
from altkraft_onprem.inbound.models import complaints
from tests.browser import sign_in
from tests.campaigns.helpers import make_campaign, make_list, make_message
from tests.conftest import start_service
from tests.deliverability.conftest import HELO, IP, key_records
from tests.smtp_sink import SmtpSink, self_signed_context

REVERSE = ".".join(reversed(IP.split("."))) + ".in-addr.arpa"
RULES = ["spf", "dkim_aligned", "dmarc", "ptr", "tls", "one_click_unsubscribe",
         "complaint_rate", "feedback_id", "from_not_freemail"]


@pytest.fixture(scope="module")
def tls_relay(tmp_path_factory):
    """A relay offering STARTTLS with a certificate for 127.0.0.1, and that certificate."""
    folder = tmp_path_factory.mktemp("tls")
    sink = SmtpSink(tls="starttls")
    sink._tls_context = self_signed_context(folder)
    sink.start()
    yield sink, folder / "cert.pem"
    sink.stop()


@pytest.fixture(scope="module")
def domain(env, dns_server):
    with db.write(env.engine) as conn:
        domain_id = domains.add_domain(conn, system_actor(), env.settings, "shop.example.com")
        found = domains.get_domain(conn, domain_id)
    dns_server.serve(key_records(found))
    domains.activate_published(env.engine, system_actor(), env.settings, domain_id, "rsa-sha256")
    return found


def good_zone(domain: dict) -> dict:
    return {**key_records(domain), REVERSE: {"PTR": [HELO]}, HELO: {"A": [IP]},
            "shop.example.com": {"TXT": [f"v=spf1 ip4:{IP} -all"], "MX": [(10, HELO)]},
            "_dmarc.shop.example.com": {"TXT": ["v=DMARC1; p=none; rua=mailto:d@example.com"]}}


@pytest.fixture(scope="module")
def service(env, dns_server, tls_relay):
    sink, cert = tls_relay
    server = start_service(env, extra_env={
        "ALTKRAFT_DELIVERABILITY__NAMESERVERS": json.dumps([dns_server.address]),
        "ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay(verify_tls=True, helo=HELO)]),
        "ALTKRAFT_DELIVERABILITY__SENDING_IPS": json.dumps([IP]),
        "SSL_CERT_FILE": str(cert)})
    yield server
    server.stop()


def _lines(report: dict) -> dict[tuple[str, str], dict]:
    return {(x["rule"], x["subject"]): x for x in report["lines"]}


def test_every_line_is_computed_and_answers_in_the_contracts_shape(env, service, domain,
                                                                  dns_server, admin_token):
    dns_server.serve(good_zone(domain))
    response = requests.get(service.url + "/api/v1/deliverability/compliance", timeout=60,
                            headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert set(report) == {"status", "checked_at", "lines"}
    assert {x["rule"] for x in report["lines"]} == set(RULES)
    assert all(set(x) == {"rule", "subject", "status", "requirement", "detail"}
               for x in report["lines"])
    found = _lines(report)
    name = "shop.example.com"
    assert found[("spf", name)]["status"] == "pass", found
    assert found[("dkim_aligned", name)]["status"] == "pass", found[("dkim_aligned", name)]
    assert "d=shop.example.com" in found[("dkim_aligned", name)]["detail"]
    assert found[("dmarc", name)]["status"] == "pass"          # p=none is what the rule asks
    assert found[("ptr", IP)]["status"] == "pass"
    tls = next(x for x in report["lines"] if x["rule"] == "tls")
    assert tls["status"] == "pass" and "STARTTLS, TLSv1." in tls["detail"], tls
    # The POST reached the service and answered; the URL is http:// here, which Gmail refuses.
    unsubscribe = found[("one_click_unsubscribe", name)]
    assert unsubscribe["status"] == "warn" and "answered 200" in unsubscribe["detail"], unsubscribe
    assert found[("feedback_id", name)]["status"] == "pass"
    assert found[("from_not_freemail", name)]["status"] == "pass"
    assert found[("complaint_rate", "")]["status"] == "unknown"   # nothing sent yet


def test_the_self_test_post_unsubscribes_nobody(env, service, domain, dns_server, admin_token):
    """The one-click POST is made (the service answers it) for the sample person only: the
    people who exist — the first ids among them — stay as they were."""
    dns_server.serve(good_zone(domain))
    _, ids = make_list(env, "Bystanders", [{"email": f"bystander{i}@example.org"} for i in range(3)])
    with db.read(env.engine) as conn:
        before = conn.execute(select(subscribers.c.id, subscribers.c.state)
                              .order_by(subscribers.c.id)).all()
    assert set(ids) <= {row.id for row in before} and min(ids) <= 3
    assert {row.state for row in before if row.id in ids} == {"active"}
    response = requests.get(service.url + "/api/v1/deliverability/compliance", timeout=60,
                            headers={"Authorization": f"Bearer {admin_token}"})
    unsubscribe = _lines(response.json())[("one_click_unsubscribe", "shop.example.com")]
    assert "answered 200" in unsubscribe["detail"], unsubscribe
    with db.read(env.engine) as conn:
        assert conn.execute(select(subscribers.c.id, subscribers.c.state)
                            .order_by(subscribers.c.id)).all() == before


def test_a_viewer_reads_the_panel(env, service, domain):
    response = requests.get(service.url + "/api/v1/deliverability/compliance", timeout=60,
                            headers={"Authorization": f"Bearer {env.token('Viewer')}"})
    assert response.status_code == 200


def _settings(env, **values):
    return settings_store.effective(env.settings, env.engine).replace(**values)


def test_a_domain_without_records_fails_spf_dkim_and_dmarc(env, domain, dns_server):
    dns_server.serve({REVERSE: {"PTR": [HELO]}, HELO: {"A": [IP]}})
    report = compliance.run(env.engine, _settings(env))
    found = {(x.rule, x.subject): x for x in report.lines}
    name = "shop.example.com"
    assert found[("spf", name)].status == "missing"
    assert found[("dkim_aligned", name)].status == "fail"
    assert "does not verify" in found[("dkim_aligned", name)].detail or \
        "not published" in found[("dkim_aligned", name)].detail or \
        "no signature" in found[("dkim_aligned", name)].detail
    assert found[("dmarc", name)].status == "missing"
    assert report.status == "fail"


def test_a_freemail_default_from_is_named(env, domain, dns_server):
    dns_server.serve(good_zone(domain))
    report = compliance.run(env.engine, _settings(env, audience__from_email="news@gmail.com"))
    found = {(x.rule, x.subject): x for x in report.lines}
    assert found[("from_not_freemail", "gmail.com")].status == "fail"
    assert found[("from_not_freemail", "shop.example.com")].status == "pass"
    assert found[("dkim_aligned", "gmail.com")].status == "fail"     # we hold no key for it


def test_plain_text_to_the_relay_fails(env, domain, dns_server, tls_relay):
    sink, _cert = tls_relay
    plain = SmtpSink().start()
    try:
        report = compliance.run(env.engine, _settings(env, smtp__relays=[
            plain.relay(), sink.relay(verify_tls=True)]))
    finally:
        plain.stop()
    tls = {x.subject: x for x in report.lines if x.rule == "tls"}
    assert tls[f"127.0.0.1:{plain.port}"].status == "fail"
    # without the service's trust in it, the relay's certificate does not verify
    assert tls[f"127.0.0.1:{sink.port}"].status == "fail"
    assert "certificate" in tls[f"127.0.0.1:{sink.port}"].detail


def test_a_relay_that_does_not_answer_is_could_not_check(env, domain):
    report = compliance.run(env.engine, _settings(env, smtp__relays=[
        {"host": "127.0.0.1", "port": 9, "security": "starttls"}]))
    tls = next(x for x in report.lines if x.rule == "tls")
    assert tls.status == "unknown" and "did not answer" in tls.detail


def test_a_dns_server_that_never_answers_is_could_not_check(env, domain):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        report = compliance.run(env.engine, _settings(
            env, deliverability__nameservers=[f"127.0.0.1:{port}"],
            deliverability__check_timeout_seconds=0.5))
    found = {(x.rule, x.subject): x for x in report.lines}
    assert found[("spf", "shop.example.com")].status == "unknown"
    assert found[("dmarc", "shop.example.com")].status == "unknown"
    assert found[("dkim_aligned", "shop.example.com")].status == "unknown"
    assert not any(x.status == "fail" and x.rule in ("spf", "dmarc", "ptr") for x in report.lines)


def _sent_with_complaints(env, people: int, complained: int, domain_name: str) -> int:
    tag = uuid.uuid4().hex[:8]
    list_id, ids = make_list(env, f"rate {tag}", [
        {"email": f"p{i}.{tag}@{domain_name}"} for i in range(people)])
    campaign_id = make_campaign(env, make_message(env), [list_id])
    now = utcnow()
    with db.write(env.engine) as conn:
        conn.execute(campaigns.update().where(campaigns.c.id == campaign_id)
                     .values(state="finished", started_at=now))
        conn.execute(insert(deliveries), [{"campaign_id": campaign_id, "subscriber_id": sid,
                                           "state": "sent", "done_at": now} for sid in ids])
        conn.execute(insert(complaints), [
            {"at": now, "source": "arf", "subscriber_id": sid, "campaign_id": campaign_id,
             "email": f"p{i}@{domain_name}", "provider": "gmail" if domain_name == "gmail.com"
             else "other"} for i, sid in enumerate(ids[:complained])])
    return campaign_id


def test_the_complaint_rate_comes_from_the_complaints_received(env, domain):
    settings = _settings(env, inbound__complaint_min_delivered=100)
    _sent_with_complaints(env, 400, 1, "gmail.com")           # 0.25 %: over Gmail's 0.1 % advice
    with db.read(env.engine) as conn:
        line = compliance.complaint_line(conn, settings)
    assert line.status == "warn" and "Gmail: 0.25 % (1 complaints / 400 delivered)" in line.detail
    _sent_with_complaints(env, 200, 2, "gmail.com")           # 3 / 600 = 0.5 %
    with db.read(env.engine) as conn:
        line = compliance.complaint_line(conn, settings)
    assert line.status == "fail" and "0.50 %" in line.detail, line.detail


@pytest.fixture()
def browser_context_args() -> dict:
    return {"locale": "en-US", "viewport": {"width": 390, "height": 844}}


@pytest.mark.browser
def test_reading_the_compliance_panel_in_the_browser(env, service, domain, dns_server, page):
    dns_server.serve(good_zone(domain))
    sign_in(page, service.url, env.user("Viewer"))
    page.goto(service.url + "/deliverability")
    run = page.get_by_role("link", name="Check the rules now")
    run.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#compliance-lines")
    expect(panel).to_be_visible(timeout=60_000)
    row = panel.locator('tr[data-rule="dkim_aligned"][data-subject="shop.example.com"]')
    expect(row).to_have_attribute("data-status", "pass")
    expect(row).to_contain_text("DKIM aligned")
    expect(panel.locator('tr[data-rule="tls"]')).to_contain_text("certificate verified")
    expect(panel.locator('tr[data-rule="one_click_unsubscribe"][data-subject="shop.example.com"]')
           ).to_contain_text("answered 200")
    expect(panel.locator('tr[data-rule="complaint_rate"]')).to_contain_text("Spam-complaint rate")
    expect(page.locator("#compliance-status")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
