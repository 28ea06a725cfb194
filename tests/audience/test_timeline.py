"""The subscriber timeline: campaigns received from the delivery ledger, paged."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from altkraft_onprem import db
from altkraft_onprem.audience import activity
from altkraft_onprem.campaigns import service as campaign_service
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.messages import service as message_service

from .conftest import ACTOR

BASE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture()
def admin(env):
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    return client


def uid() -> str:
    return uuid.uuid4().hex[:8]


def make_campaign(conn, name: str, list_id: int) -> int:
    message_id, _ = message_service.create_message(conn, ACTOR, f"msg {name}", subject="Hi", html="<p>Hi</p>")
    return campaign_service.create_campaign(conn, ACTOR, name=name, message_id=message_id, list_ids=[list_id],
                                            from_email="news@example.com")


def ledger_row(conn, campaign_id: int, subscriber_id: int, state: str, done: datetime | None,
               reply: str | None = None) -> None:
    """A ledger row as the sender leaves it (the campaigns module owns these rows)."""
    conn.execute(insert(deliveries).values(campaign_id=campaign_id, subscriber_id=subscriber_id, variant=0,
                                           state=state, attempts=1, done_at=done, reply=reply))


def test_sent_failed_and_in_doubt_campaigns_are_in_the_timeline(env, people):
    tag = uid()
    list_id = people.list(f"tl-{tag}")
    sid = people.add(f"tl-{tag}@example.com", list_ids=[list_id])
    with db.write(env.engine) as conn:
        ids = {state: make_campaign(conn, f"{state} {tag}", list_id)
               for state in ("sent", "failed", "in_doubt", "queued", "skipped")}
        ledger_row(conn, ids["sent"], sid, "sent", BASE)
        ledger_row(conn, ids["failed"], sid, "failed", BASE + timedelta(hours=1), "550 5.1.1 no such user")
        ledger_row(conn, ids["in_doubt"], sid, "in_doubt", BASE + timedelta(hours=2))
        ledger_row(conn, ids["queued"], sid, "queued", None)
        ledger_row(conn, ids["skipped"], sid, "skipped", BASE + timedelta(hours=3))
    with db.read(env.engine) as conn:
        items = [i for i in activity.timeline(conn, sid) if i["kind"].startswith("campaign_")]
    assert [(i["kind"], i["details"]["campaign"]) for i in items] == [
        ("campaign_in_doubt", f"in_doubt {tag}"), ("campaign_failed", f"failed {tag}"),
        ("campaign_sent", f"sent {tag}")]
    assert items[1]["details"]["reply"] == "550 5.1.1 no such user"
    assert items[2]["details"]["campaign_id"] == ids["sent"]


def test_subscriber_page_links_the_campaigns_received(env, people, admin):
    tag = uid()
    list_id = people.list(f"tlp-{tag}")
    sid = people.add(f"tlp-{tag}@example.com", list_ids=[list_id])
    with db.write(env.engine) as conn:
        sent = make_campaign(conn, f"Spring <sale> {tag}", list_id)
        failed = make_campaign(conn, f"Bounced {tag}", list_id)
        ledger_row(conn, sent, sid, "sent", BASE)
        ledger_row(conn, failed, sid, "failed", BASE + timedelta(minutes=5), "550 mailbox unavailable")
    html = admin.get(f"/audience/subscribers/{sid}").get_data(as_text=True)
    assert f'href="/campaigns/{sent}">Spring &lt;sale&gt; {tag}</a>' in html
    assert f'href="/campaigns/{failed}">Bounced {tag}</a>' in html
    assert "Campaign sent" in html and "Campaign not delivered" in html
    assert "550 mailbox unavailable" in html


def test_a_long_timeline_is_paged(env, people, admin):
    tag = uid()
    list_id = people.list(f"tlpg-{tag}")
    sid = people.add(f"tlpg-{tag}@example.com", list_ids=[list_id])
    with db.write(env.engine) as conn:
        for n in range(activity.PAGE_SIZE + 10):
            campaign_id = make_campaign(conn, f"c{n:03d} {tag}", list_id)
            ledger_row(conn, campaign_id, sid, "sent", BASE + timedelta(minutes=n))
    with db.read(env.engine) as conn:
        everything = activity.timeline(conn, sid, limit=1000)
        first = activity.timeline(conn, sid, limit=activity.PAGE_SIZE)
        second = activity.timeline(conn, sid, limit=activity.PAGE_SIZE, offset=activity.PAGE_SIZE)
    assert first + second == everything
    newest_campaigns = [i["details"]["campaign"] for i in first if i["kind"] == "campaign_sent"]
    assert newest_campaigns[0] == f"c{activity.PAGE_SIZE + 9:03d} {tag}"
    assert second[-1]["details"]["campaign"] == f"c000 {tag}"
    page1 = admin.get(f"/audience/subscribers/{sid}").get_data(as_text=True)
    page2 = admin.get(f"/audience/subscribers/{sid}?page=2").get_data(as_text=True)
    assert "page=2#timeline" in page1 and "page=1#timeline" not in page1
    assert newest_campaigns[0] in page1 and f"c000 {tag}" not in page1
    assert f"c000 {tag}" in page2 and "page=1#timeline" in page2 and "page=3#timeline" not in page2
    assert len(re.findall(r'class="campaign_sent"', page1)) == len(newest_campaigns)
