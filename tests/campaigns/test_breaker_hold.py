"""An open circuit breaker (campaigns/breakers.py) holds a provider's rows — a campaign's and
the transactional API's alike — without the senders claiming them one by one: the send run
defers the due rows of people at that provider in one statement per provider (as it defers a
quiet zone), every time they come due again (every breakers.RECHECK) while it stays open."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.campaigns import breakers, transactional
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
    start,
)

GMAIL = [{"email": f"held{i}@gmail.com"} for i in range(3)]
ELSEWHERE = [{"email": f"held{i}@example.net"} for i in range(2)]


@pytest.fixture(scope="module")
def settings(env, sink):
    found, _ = sending_settings(env, sink, delivery__processes=1, audience__from_email="shop@example.com")
    with db.write(env.engine) as conn:
        breakers.trip(conn, "gmail", "too many blocks (test)", None)
    yield found
    with db.write(env.engine) as conn:
        breakers.close(conn, ACTOR, "gmail")


def _queued(env, campaign_id: int) -> list:
    with db.read(env.engine) as conn:
        return conn.execute(select(deliveries.c.subscriber_id, deliveries.c.reply, deliveries.c.attempts,
                                   deliveries.c.next_attempt_at, deliveries.c.lease_owner)
                            .where(deliveries.c.campaign_id == campaign_id,
                                   deliveries.c.state == "queued")).all()


def _held_right(rows, count: int) -> None:
    soon = utcnow() + breakers.RECHECK
    assert len(rows) == count
    for row in rows:
        assert row.reply.startswith("held: sending to gmail is paused: too many blocks")
        assert row.attempts == 0 and row.lease_owner is None
        assert soon - timedelta(minutes=1) < row.next_attempt_at <= soon


def test_a_campaigns_rows_at_the_provider_wait_without_being_claimed(env, sink, settings):
    sink.clear()
    list_id, _ = make_list(env, "Held at Gmail", GMAIL + ELSEWHERE)
    campaign_id = make_campaign(env, make_message(env), [list_id], name="Held")
    start(env, settings, campaign_id)
    outcomes = run_campaign(settings, env.engine, campaign_id, processes=1)
    assert sorted(r for m in sink.messages for r in m.envelope_to) == [p["email"] for p in ELSEWHERE]
    assert sum(o.held for o in outcomes) == 0          # no sender saw them
    _held_right(_queued(env, campaign_id), 3)
    with db.read(env.engine) as conn:
        assert breakers.held(conn, campaign_id) == {"gmail": 3}
    assert progress(env, campaign_id)["state"] == "running"

    # RECHECK later, still open: held again the same way, still unclaimed, nothing sent
    with db.write(env.engine) as conn:
        conn.execute(update(deliveries).where(deliveries.c.campaign_id == campaign_id,
                                              deliveries.c.state == "queued")
                     .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    outcomes = run_campaign(settings, env.engine, campaign_id, processes=1)
    assert sum(o.held for o in outcomes) == 0 and len(sink.messages) == 2
    _held_right(_queued(env, campaign_id), 3)


def test_transactional_mail_to_the_provider_waits_too(env, sink, settings):
    """A subscriber's request waits like a campaign's row; one to an address outside the
    audience (known only from the request) is held by the sender when its turn comes."""
    sink.clear()
    _, (person,) = make_list(env, "Held transactional", [{"email": "buyer@gmail.com"}])
    message_id = make_message(env)
    with db.write(env.engine) as conn:
        accepted = [transactional.accept(conn, system_actor("test"), settings, transactional.Request(
            message_id=message_id, **to)) for to in (
                {"mode": "existing", "subscriber_id": person},
                {"mode": "external", "email": "guest@gmail.com"},
                {"mode": "external", "email": "guest@example.net"})]
    outcomes = run_campaign(settings, env.engine, accepted[0].campaign_id, processes=1)
    assert [r for m in sink.messages for r in m.envelope_to] == ["guest@example.net"]
    assert sum(o.held for o in outcomes) == 1          # the outside address
    _held_right(_queued(env, accepted[0].campaign_id), 2)
