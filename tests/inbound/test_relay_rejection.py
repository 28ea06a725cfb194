"""A relay's synchronous 5xx while sending is a bounce too: the address is suppressed, so the
next campaign does not try the dead address again (listmonk #2623 has this defect)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.inbound.models import bounces
from tests.campaigns.helpers import make_campaign, make_message, start
from tests.inbound.conftest import inbound_settings, send_campaign

PEOPLE = [{"email": f"relayed{i}@example.net"} for i in range(4)]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink)
    sink.fail("550 5.1.1 <relayed1@example.net>: Recipient address rejected: User unknown",
              stage="rcpt", rcpt="relayed1@example.net")
    sink.fail("554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
              stage="rcpt", rcpt="relayed2@example.net")
    sent = send_campaign(env, settings, PEOPLE, "Relayed")
    return {**sent, "settings": settings}


def _bounce(env, subscriber_id: int):
    with db.read(env.engine) as conn:
        return conn.execute(select(bounces).where(bounces.c.subscriber_id == subscriber_id)).first()


def _state(env, subscriber_id: int) -> str:
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers.c.state).where(subscribers.c.id == subscriber_id)).scalar_one()


def test_a_5xx_for_a_dead_address_is_a_hard_bounce(env, world):
    bounce = _bounce(env, world["ids"][1])
    assert (bounce.source, bounce.bounce_class, bounce.status, bounce.campaign_id, bounce.suppressed) == \
        ("relay", "hard", "5.1.1", world["campaign_id"], True)
    assert _state(env, world["ids"][1]) == "bounced"


def test_a_5xx_for_a_blocklisted_sender_suppresses_nobody(env, world):
    bounce = _bounce(env, world["ids"][2])
    assert (bounce.bounce_class, bounce.suppressed) == ("policy", False)
    assert _state(env, world["ids"][2]) == "active"


def test_the_next_campaign_does_not_try_the_dead_address(env, world, sink):
    from altkraft_onprem.campaigns.jobs import run_campaign

    sink.clear()
    campaign_id = make_campaign(env, make_message(env), [world["list_id"]], name="Relayed again")
    start(env, world["settings"], campaign_id)
    run_campaign(world["settings"], env.engine, campaign_id, processes=1)
    assert sorted(sink.recipients()) == ["relayed0@example.net", "relayed2@example.net",
                                         "relayed3@example.net"]
