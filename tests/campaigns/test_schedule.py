"""Scheduled starts: the tick (and the consumer's start-up check) starts campaigns whose time
has come, also when the service was down across that time."""
from __future__ import annotations

from datetime import timedelta

import pytest

from altkraft_onprem import db
from altkraft_onprem.campaigns import actions
from altkraft_onprem.campaigns.jobs import start_due
from altkraft_onprem.campaigns.models import campaigns as campaign_table
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
)


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
