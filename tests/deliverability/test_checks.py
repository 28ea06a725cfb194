"""The checks of every sending domain and IP against a real DNS server on 127.0.0.1 serving good,
broken and blocklisted zones: /api/v1/domains/{id}/checks in the contract's shape, a
regression raises an alert, a domain event (the webhook outbox), an email and a banner; a DNS
server that answers SERVFAIL or nothing is "could not check", never a false alert."""
from __future__ import annotations

import socket

import pytest
from sqlalchemy import select

from altkraft_onprem import db, events
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.automation import webhooks
from altkraft_onprem.automation.models import outbox
from altkraft_onprem.deliverability import checks, domains, settings_store
from altkraft_onprem.inbound.models import alerts
from tests.deliverability.conftest import HELO, IP, key_records

REVERSE = ".".join(reversed(IP.split("."))) + ".in-addr.arpa"
CHECK_NAMES = ["ptr", "spf", "dkim", "dmarc", "mx", "mta_sts", "tls_rpt", "blocklist"]


@pytest.fixture(scope="module")
def domain(env, dns_server):
    """example.com made in the app, its key active."""
    with db.write(env.engine) as conn:
        domain_id = domains.add_domain(conn, system_actor(), env.settings, "example.com")
        found = domains.get_domain(conn, domain_id)
    dns_server.serve(key_records(found))
    domains.activate_published(env.engine, system_actor(), env.settings, domain_id, "rsa-sha256")
    return found


def good_zone(domain: dict) -> dict:
    return {
        **key_records(domain),
        REVERSE: {"PTR": [HELO]}, HELO: {"A": [IP]},
        "example.com": {"TXT": [f"v=spf1 ip4:{IP} -all"], "MX": [(10, HELO)]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=reject; rua=mailto:dmarc@example.com"]},
        "_smtp._tls.example.com": {"TXT": ["v=TLSRPTv1; rua=mailto:tls@example.com"]},
    }


@pytest.fixture()
def regressions():
    seen = []

    def handler(conn, **payload):
        seen.append(payload)
    events.DELIVERABILITY_REGRESSED.connect(handler)
    yield seen
    events.DELIVERABILITY_REGRESSED.disconnect(handler)


def _run(api, domain) -> dict[str, dict]:
    response = api("POST", f"/domains/{domain['id']}/checks")
    assert response.status_code == 200, response.get_json()
    return {c["check"]: c for c in response.get_json()["checks"]}


def test_the_checks_answer_in_the_contracts_shape(api, domain, dns_server):
    dns_server.serve(good_zone(domain))
    found = api("POST", f"/domains/{domain['id']}/checks").get_json()["checks"]
    assert [c["check"] for c in found] == CHECK_NAMES
    assert all(set(c) >= {"check", "status", "detail", "checked_at"} for c in found)
    statuses = {c["check"]: c["status"] for c in found}
    assert statuses == {**dict.fromkeys(CHECK_NAMES, "pass"), "mta_sts": "missing"}, found
    assert api("GET", f"/domains/{domain['id']}/checks").get_json()["checks"] == found


def test_a_domain_never_checked_has_no_results(api):
    created = api("POST", "/domains", json={"domain": "fresh.example.com"}).get_json()
    assert api("GET", f"/domains/{created['id']}/checks").get_json() == {"checks": []}
    api("DELETE", f"/domains/{created['id']}")


def test_a_viewer_reads_the_results_but_may_not_run_them(env, api, domain):
    viewer = env.token("Viewer")
    assert api("GET", f"/domains/{domain['id']}/checks", token=viewer).status_code == 200
    assert api("POST", f"/domains/{domain['id']}/checks", token=viewer).status_code == 403


def test_servfail_is_could_not_check_and_raises_no_alert(env, api, domain, dns_server,
                                                         regressions):
    dns_server.serve(good_zone(domain))
    _run(api, domain)
    zone = good_zone(domain)
    zone["example.com"] = {"RCODE": "SERVFAIL"}
    zone["_dmarc.example.com"] = {"RCODE": "SERVFAIL"}
    dns_server.serve(zone)
    found = _run(api, domain)
    assert found["spf"]["status"] == "unknown" and found["mx"]["status"] == "unknown"
    assert found["spf"]["detail"].startswith("could not check: DNS did not answer")
    assert found["dmarc"]["status"] == "unknown"
    assert regressions == []
    dns_server.serve(good_zone(domain))
    assert _run(api, domain)["spf"]["status"] == "pass"
    assert regressions == []                # unknown -> pass is not news either


def test_a_dns_server_that_never_answers_is_could_not_check(env, domain, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        settings = settings_store.effective(env.settings.replace(
            deliverability__nameservers=[f"127.0.0.1:{silent.getsockname()[1]}"],
            deliverability__check_timeout_seconds=0.3), env.engine)
        outcome = checks.run(env.engine, settings, ["example.com"], with_ips=False)
    statuses = {name: c.status for name, c in outcome.domains["example.com"].items()}
    assert statuses == dict.fromkeys(CHECK_NAMES, "unknown"), statuses
    assert outcome.regressions == []


def test_a_record_that_breaks_raises_an_alert_an_event_and_a_banner(env, api, domain, dns_server,
                                                                     regressions, signed_in):
    dns_server.serve(good_zone(domain))
    _run(api, domain)
    zone = good_zone(domain)
    zone["example.com"] = {"TXT": ["v=spf1 ip4:203.0.113.9 -all"], "MX": [(10, HELO)]}
    dns_server.serve(zone)
    found = _run(api, domain)
    assert found["spf"]["status"] == "fail"
    assert [(r["subject"], r["check"], r["previous"], r["status"]) for r in regressions] == \
        [("example.com", "spf", "pass", "fail")]
    with db.read(env.engine) as conn:
        alert = conn.execute(select(alerts).where(alerts.c.subject == "example.com spf")).one()
    assert (alert.kind, alert.level) == ("dns", "fail")
    page = signed_in("Viewer").get("/campaigns").get_data(as_text=True)
    assert 'id="deliverability-banner"' in page and "example.com spf (fail)" in page
    dns_server.serve(good_zone(domain))
    _run(api, domain)
    from altkraft_onprem.deliverability import views_checks
    views_checks._banner_cache.clear()
    assert 'id="deliverability-banner"' not in signed_in("Viewer").get("/campaigns").get_data(as_text=True)


def test_a_regression_reaches_a_webhook_through_the_outbox(env, api, domain, dns_server):
    settings = env.settings.replace(automation__webhook_allowed_private_networks=["127.0.0.0/8"])
    with db.write(env.engine) as conn:
        webhooks.create(conn, system_actor(), settings, url="http://127.0.0.1:9/hook",
                        events=["deliverability.regressed"])
    dns_server.serve(good_zone(domain))
    _run(api, domain)
    zone = good_zone(domain)
    del zone["_dmarc.example.com"]
    dns_server.serve(zone)
    assert _run(api, domain)["dmarc"]["status"] == "missing"
    with db.read(env.engine) as conn:
        rows = conn.execute(select(outbox.c.payload).where(
            outbox.c.type == "deliverability.regressed")).scalars().all()
    assert {"subject": "example.com", "check": "dmarc", "status": "missing", "previous": "pass",
            "kind": "domain"}.items() <= rows[-1].items()


def test_the_administrators_get_an_email_about_what_got_worse(env, api, domain, dns_server,
                                                               smtp_sink):
    with db.write(env.engine) as conn:
        settings_store.set_value(conn, system_actor(), env.settings, "smtp.relays",
                                 [smtp_sink.relay(helo=HELO)])
    admin = env.user("Administrator")
    dns_server.serve(good_zone(domain))
    _run(api, domain)
    zone = good_zone(domain)
    del zone[REVERSE]
    dns_server.serve(zone)
    assert _run(api, domain)["ptr"]["status"] == "missing"
    [mail] = smtp_sink.by_recipient(admin["email"])
    assert mail["Subject"] == "Deliverability: example.com ptr is missing"
    assert f"example.com ptr: pass -> missing: {IP} has no PTR record" in mail.get_content()
    with db.write(env.engine) as conn:
        settings_store.reset_value(conn, system_actor(), "smtp.relays")


def test_a_listed_sending_ip_and_a_listed_domain(env, api, domain, dns_server):
    zone = good_zone(domain)
    zone["10.2.0.192.zen.spamhaus.org"] = {"A": ["127.0.0.2"], "TXT": ["https://check.spamhaus.org/"]}
    zone["10.2.0.192.b.barracudacentral.org"] = {"A": ["127.255.255.254"]}   # refused
    zone["example.com.dbl.spamhaus.org"] = {"A": ["127.0.1.2"]}
    dns_server.serve(zone)
    settings_store.invalidate()
    checks.run(env.engine, settings_store.effective(env.settings, env.engine))
    listings = {(x["subject"], x["zone"]): x for x in
                api("GET", "/deliverability/blocklists").get_json()["listings"]}
    assert listings[(IP, "zen.spamhaus.org")]["status"] == "fail"
    assert "https://check.spamhaus.org/" in listings[(IP, "zen.spamhaus.org")]["detail"]
    assert listings[(IP, "b.barracudacentral.org")]["status"] == "unknown"
    assert listings[(IP, "bl.spamcop.net")]["status"] == "pass"
    found = {c["check"]: c for c in api("GET", f"/domains/{domain['id']}/checks").get_json()["checks"]}
    assert found["blocklist"]["status"] == "fail"
    assert "example.com is listed on dbl.spamhaus.org" in found["blocklist"]["detail"]


def test_a_waiting_key_starts_signing_once_its_record_is_published(env, api, dns_server):
    created = api("POST", "/domains", json={"domain": "later.example.com"}).get_json()
    checks.run(env.engine, env.settings, ["later.example.com"], with_ips=False)
    assert api("GET", f"/domains/{created['id']}").get_json()["keys"][0]["state"] == "pending"
    dns_server.serve(key_records(created))
    outcome = checks.run(env.engine, env.settings, ["later.example.com"], with_ips=False)
    assert outcome.activated == [created["keys"][0]["record_name"]]
    assert api("GET", f"/domains/{created['id']}").get_json()["keys"][0]["state"] == "active"
    api("DELETE", f"/domains/{created['id']}")


@pytest.fixture(scope="module")
def signed_in(env):
    clients = {}

    def login(role: str):
        if role not in clients:
            clients[role] = env.app.test_client()
            env.login(clients[role], env.user(role))
        return clients[role]
    return login
