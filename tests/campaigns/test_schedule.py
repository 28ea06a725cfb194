"""Scheduled starts: the tick (and the consumer's start-up check) starts campaigns whose time
has come, also when the service was down across that time."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.models import audit_log
from altkraft_onprem.campaigns import actions
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import start_due
from altkraft_onprem.campaigns.models import campaigns as campaign_table
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages import service as messages
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
)
from tests.conftest import csrf_token


@pytest.fixture(scope="module")
def world(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    list_id, _ = make_list(env, "Scheduled", [{"email": f"s{i}@example.org"} for i in range(3)])
    return settings, list_id, make_message(env)


def scheduled(env, world, when) -> int:
    settings, list_id, message_id = world
    campaign_id = make_campaign(env, message_id, [list_id], schedule_at=when)
    actions.perform(ACTOR, settings, campaign_id, "schedule", engine=env.engine)
    return campaign_id


def test_future_campaign_waits(env, world):
    campaign_id = scheduled(env, world, utcnow() + timedelta(hours=1))
    with env.app.app_context():
        start_due()
    assert progress(env, campaign_id)["state"] == "scheduled"


def test_missed_time_starts_at_the_next_check(env, world, sink):
    campaign_id = scheduled(env, world, utcnow() + timedelta(seconds=1))
    with db.write(env.engine) as conn:     # as if the service had been down across the time
        conn.execute(campaign_table.update().where(campaign_table.c.id == campaign_id)
                     .values(schedule_at=utcnow() - timedelta(minutes=5)))
    with env.app.app_context():
        assert start_due() == [campaign_id]
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"]) == ("finished", 3)


def test_schedule_needs_a_time(env, world):
    settings, list_id, message_id = world
    campaign_id = make_campaign(env, message_id, [list_id])
    with pytest.raises(ServiceError, match="date and time"):
        actions.perform(ACTOR, settings, campaign_id, "schedule", engine=env.engine)


def _late(env, world, hours: float) -> int:
    """A campaign scheduled `hours` ago, as if the service had been down across its time."""
    campaign_id = scheduled(env, world, utcnow() + timedelta(seconds=1))
    with db.write(env.engine) as conn:
        conn.execute(campaign_table.update().where(campaign_table.c.id == campaign_id)
                     .values(schedule_at=utcnow() - timedelta(hours=hours)))
    return campaign_id


def test_a_campaign_later_than_max_lateness_waits_for_a_decision(env, world, client):
    """listmonk #1801: a campaign 7 h late (campaigns.max_lateness is 6 h by default) does
    not go out by itself; it is held as a draft with the reason, audited, and 'Start now'
    on its page sends it."""
    campaign_id = _late(env, world, 7)
    with env.app.app_context():
        assert campaign_id not in start_due()
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"]) == ("draft", 0)
    with db.read(env.engine) as conn:
        reason = conn.execute(select(campaign_table.c.pause_reason)
                              .where(campaign_table.c.id == campaign_id)).scalar()
        audited = conn.execute(select(audit_log.c.details).where(
            audit_log.c.action == "campaign.late_start_held",
            audit_log.c.target_id == str(campaign_id))).scalars().all()
    assert reason.startswith("Late start:") and "7 h late" in reason and "max_lateness" in reason
    assert len(audited) == 1 and '"late_hours": 7' in audited[0]

    with env.app.app_context():                       # the next tick leaves it alone
        start_due()
    assert progress(env, campaign_id)["state"] == "draft"

    token = env.token("Manager")
    shown = client.get(f"/api/v1/campaigns/{campaign_id}",
                       headers={"Authorization": f"Bearer {token}"}).get_json()
    assert (shown["state"], shown["pause_reason"]) == ("draft", reason)

    env.login(client, env.user("Manager"))
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="late-start"' in page and "longer than campaigns.max_lateness" in page
    assert 'id="late-start-now"' in page
    response = client.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"]) == ("finished", 3)
    with db.read(env.engine) as conn:
        assert conn.execute(select(campaign_table.c.pause_reason)
                            .where(campaign_table.c.id == campaign_id)).scalar() is None


def test_a_campaign_within_max_lateness_starts(env, world):
    campaign_id = _late(env, world, 1)
    with env.app.app_context():
        assert start_due() == [campaign_id]
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"]) == ("finished", 3)


def test_a_late_campaign_that_the_checks_would_block_is_held_as_late(env, world):
    """Late first: whether it should go out at all is the decision the page asks for (a sale
    that ended, a date in the text); the pre-send checks run when someone starts it, and say
    what blocks it then. Held as blocked, its lateness would be lost: once the block was
    mended, Start would send it a day late without a word."""
    settings, list_id, _ = world
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "HTML only", subject="Sale",
                                                html="<p>Today only</p>", text="",
                                                text_follows_html=False)
    strict = settings.replace(deliverability__presend_block_codes=["no_text_part"])
    campaign_id = make_campaign(env, message_id, [list_id], schedule_at=utcnow() + timedelta(seconds=1))
    actions.perform(ACTOR, settings, campaign_id, "schedule", engine=env.engine)
    with db.write(env.engine) as conn:
        conn.execute(campaign_table.update().where(campaign_table.c.id == campaign_id)
                     .values(schedule_at=utcnow() - timedelta(hours=7)))
    env.app.config["ALTKRAFT_SETTINGS"] = strict
    try:
        with env.app.app_context():
            assert campaign_id not in start_due()
    finally:
        env.app.config["ALTKRAFT_SETTINGS"] = settings
    with db.read(env.engine) as conn:
        held = campaigns.get_campaign(conn, campaign_id)
    assert held["state"] == "draft" and held["pause_reason"].startswith("Late start:")
    assert campaigns.late_start(held) is not None
    with pytest.raises(ServiceError, match="no_text_part"):
        actions.perform(ACTOR, strict, campaign_id, "start", engine=env.engine)
    assert progress(env, campaign_id)["state"] == "draft"


def test_a_new_schedule_clears_the_late_start_reason(env, world, client):
    """The reason names the schedule it missed: once the schedule is changed it is no longer
    true (another edit leaves it). The page calls the held campaign what it shows it as."""
    campaign_id = _late(env, world, 7)
    with env.app.app_context():
        start_due()
    env.login(client, env.user("Manager"))
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="late-start"' in page
    keep = page[page.index('id="late-keep"'):].split("</span>", 1)[0]
    assert "draft" in keep and "paused" not in keep
    with db.write(env.engine) as conn:
        campaigns.update_campaign(conn, ACTOR, campaign_id, name="Renamed while held")
        assert campaigns.get_campaign(conn, campaign_id)["pause_reason"].startswith("Late start:")
        campaigns.update_campaign(conn, ACTOR, campaign_id,
                                  schedule_at=(utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"))
        found = campaigns.get_campaign(conn, campaign_id)
    assert (found["state"], found["pause_reason"]) == ("draft", None)
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="late-start"' not in page and "Late start" not in page
