"""Unsubscribes through a campaign's own links count in its report (issue 15 item 3).

A real campaign goes out through the SMTP sink; its recipients leave through the real public
routes — the one-click POST to the List-Unsubscribe URL, the unsubscribe page behind the
message's {{ unsubscribe_url }} link, a mail to the List-Unsubscribe mailto address through the
real receiver — and the report (service and REST API) counts each of them for the campaign.
"""
from __future__ import annotations

import re
import smtplib
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import consents, subscriber_activity
from altkraft_onprem.reports import campaign as report
from tests.inbound import reports as inbound_reports
from tests.inbound.conftest import Receiver, inbound_settings, send_campaign, settled

PEOPLE = [{"email": f"leaver{i}@example.net", "first_name": f"L{i}"} for i in range(5)]


@pytest.fixture(scope="module")
def sink(module_smtp_sink):
    return module_smtp_sink


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    sent = send_campaign(env, settings, PEOPLE, "Leavers")
    server = Receiver(env, settings).start()
    yield {**sent, "settings": settings, "server": server}
    server.stop()


def _message(sink, index: int):
    (message,) = sink.by_recipient(PEOPLE[index]["email"])
    return message


def _header_links(message) -> tuple[str, str]:
    """(path of the https unsubscribe URL, mailto address) of the List-Unsubscribe header."""
    http, mailto = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    return urlsplit(http).path, mailto.removeprefix("mailto:").split("?", 1)[0]


def _unsubscribes(env, subscriber_id: int) -> tuple[list[tuple], int]:
    """The person's unsubscribe consent records (campaign, form) and "unsubscribed" activities."""
    with db.read(env.engine) as conn:
        records = conn.execute(select(consents.c.campaign_id, consents.c.form).where(
            consents.c.subscriber_id == subscriber_id, consents.c.kind == "unsubscribe")).all()
        activities = conn.execute(select(subscriber_activity.c.id).where(
            subscriber_activity.c.subscriber_id == subscriber_id,
            subscriber_activity.c.kind == "unsubscribed")).all()
    return [tuple(r) for r in records], len(activities)


def test_one_click_post_records_the_campaign_once(env, world, sink, client):
    path, _ = _header_links(_message(sink, 0))
    for _attempt in range(2):          # mail clients and scanners repeat the POST
        response = client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    records, activities = _unsubscribes(env, world["ids"][0])
    assert records == [(world["campaign_id"], "one-click")]
    assert activities == 1


def test_the_unsubscribe_page_records_the_campaign(env, world, sink, client):
    html = _message(sink, 1).get_body(("html",)).get_content()
    link = re.search(r'href="([^"]*/p/u/[^"]+)"', html).group(1)
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and 'id="unsubscribe-form"' in page.get_data(as_text=True)
    assert client.post(urlsplit(link).path, data={"scope": "list"}).status_code == 200
    records, activities = _unsubscribes(env, world["ids"][1])
    assert records == [(world["campaign_id"], "unsubscribe page")] and activities == 1


def test_a_mailto_unsubscribe_records_the_campaign(env, world, sink):
    _, mailto = _header_links(_message(sink, 2))
    with smtplib.SMTP("127.0.0.1", world["server"].port, timeout=10) as smtp:
        assert smtp.sendmail("", [mailto], inbound_reports.mailto_unsubscribe(mailto)) == {}
    settled(env)
    records, activities = _unsubscribes(env, world["ids"][2])
    assert records == [(world["campaign_id"], "mailto")] and activities == 1


def test_the_report_counts_every_way_out(env, world):
    with db.read(env.engine) as conn:
        summary = report.summary(conn, world["campaign_id"])
    assert summary["unsubscribes"] == 3
    assert summary["unsubscribe_rate"] == pytest.approx(60.0)


def test_the_report_api_counts_them_too(env, world):
    token = env.token("Analyst")
    response = env.app.test_client().get(f"/api/v1/campaigns/{world['campaign_id']}/report",
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.get_json()["unsubscribes"] == 3
