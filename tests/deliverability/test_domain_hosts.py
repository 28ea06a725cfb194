"""A sending domain's own bounce domain and tracking host, set in the app, reach real mail: the
VERP Return-Path is at its bounce domain, the click and open links at its tracking host, and the
service answers those links on that host. Its active key signs (verified against DNS)."""
from __future__ import annotations

import re

import pytest

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.deliverability import domains, settings_store
from altkraft_onprem.tracking.buffer import BUFFER
from tests.campaigns.helpers import make_campaign, make_list, make_message, start
from tests.deliverability.conftest import key_records, verifies
from tests.smtp_sink import SmtpSink


@pytest.fixture(scope="module")
def delivered(env, dns_server):
    with db.write(env.engine) as conn:
        domain_id = domains.add_domain(conn, system_actor(), env.settings, "Example.com.",
                                       bounce_domain="bounces.example.com",
                                       tracking_host="click.example.com")
        found = domains.get_domain(conn, domain_id)
    dns_server.serve(key_records(found))
    domains.activate_published(env.engine, system_actor(), env.settings, domain_id, "rsa-sha256")
    sink = SmtpSink().start()
    settings_store.invalidate()
    settings = settings_store.effective(env.settings.replace(smtp__relays=[sink.relay()]),
                                        env.engine)
    list_id, _ = make_list(env, "Hosts", [{"email": "reader@example.net"}])
    campaign = make_campaign(env, make_message(env), [list_id])
    start(env, settings, campaign)
    run_campaign(settings, env.engine, campaign, processes=1)
    sink.stop()
    [message] = sink.by_recipient("reader@example.net")
    return message


def _html(message) -> str:
    return next(part for part in message.walk()
                if part.get_content_type() == "text/html").get_content()


def test_the_return_path_is_at_the_domains_bounce_domain(delivered):
    assert delivered.envelope_from.endswith("@bounces.example.com")


def test_click_and_open_links_are_on_the_tracking_host(delivered):
    html = _html(delivered)
    clicks = re.findall(r'href="(https?://[^/"]+)/t/c/', html)
    assert clicks and set(clicks) == {"https://click.example.com"}
    assert re.search(r'src="https://click\.example\.com/t/i/', html)


def test_the_service_answers_the_links_on_the_tracking_host(env, delivered):
    link = re.search(r'href="https://click\.example\.com(/t/c/[^"]+)"', _html(delivered)).group(1)
    answer = env.app.test_client().get(link, base_url="https://click.example.com")
    BUFFER.flush()          # the click is written while the module's database exists
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("https://shop.example.com/")


def test_the_domains_active_key_signs_and_verifies(delivered, dns_server):
    assert verifies(delivered.raw, dns_server)


def test_the_inbound_receiver_accepts_the_domains_own_bounce_domain(env, delivered):
    from altkraft_onprem.inbound.addresses import Recogniser

    settings = settings_store.effective(env.settings.replace(delivery__bounce_domain="b.example.org"),
                                        env.engine)
    recogniser = Recogniser(settings)
    assert recogniser.recognise(delivered.envelope_from) is not None       # bounces.example.com
    assert recogniser.recognise(delivered.envelope_from.replace("bounces.example.com",
                                                                "elsewhere.example")) is None
