"""The complaint-rate monitor: a warning at the warn line, the campaign paused at the pause
line (per campaign and mailbox provider), and alerts for policy blocks."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.campaigns.models import campaigns
from altkraft_onprem.inbound import intake, monitor, service
from tests.inbound import reports
from tests.inbound.conftest import FBL, inbound_settings, send_campaign

PEOPLE = [{"email": f"watched{i}@example.net"} for i in range(10)]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink, inbound__complaint_min_delivered=5,
                                inbound__complaint_warn_percent=10.0,
                                inbound__complaint_pause_percent=25.0)
    sent = send_campaign(env, settings, PEOPLE, "Watched")
    # As if the campaign were still sending when the complaints arrive (a big one is).
    with db.write(env.engine) as conn:
        conn.execute(update(campaigns).where(campaigns.c.id == sent["campaign_id"]).values(state="running"))
    return {**sent, "settings": settings}


def complain(env, world, sink, index: int) -> None:
    message = sink.by_recipient(PEOPLE[index]["email"])[0]
    with db.write(env.engine) as conn:
        stored = intake.store(conn, reports.arf(message.raw), source="replay", rcpt=FBL)
    service.process_pending(env.engine, world["settings"], ids=[stored])


def _campaign(env, world) -> dict:
    with db.read(env.engine) as conn:
        return dict(conn.execute(select(campaigns).where(campaigns.c.id == world["campaign_id"])).one()._mapping)


def _alerts(env) -> list[tuple]:
    with db.read(env.engine) as conn:
        return [(a["kind"], a["level"], a["provider"]) for a in monitor.list_alerts(conn)]


def test_one_complaint_in_ten_is_a_warning(env, world, sink):
    complain(env, world, sink, 0)
    assert ("complaint_rate", "warning", "other") in _alerts(env)
    assert _campaign(env, world)["state"] == "running"


def test_crossing_the_pause_line_pauses_the_campaign_with_the_reason(env, world, sink):
    complain(env, world, sink, 1)
    assert _campaign(env, world)["state"] == "running"          # 20 %: still under 25 %
    complain(env, world, sink, 2)
    found = _campaign(env, world)
    assert found["state"] == "paused"
    assert "complaint rate 30.00 % at other" in found["pause_reason"]
    assert ("complaint_rate", "paused", "other") in _alerts(env)


def test_a_policy_block_raises_an_alert(env, world, sink):
    message = sink.by_recipient(PEOPLE[5]["email"])[0]
    with db.write(env.engine) as conn:
        stored = intake.store(conn, reports.dsn(
            message.raw, recipient=PEOPLE[5]["email"], status="5.7.1",
            diagnostic="smtp; 550 5.7.1 blocked using bl.spamcop.net"), source="replay",
            rcpt=message.envelope_from)
    service.process_pending(env.engine, world["settings"], ids=[stored])
    assert ("policy", "warning", "other") in _alerts(env)
