"""`altkraft inbound replay FILE.eml [--rcpt ADDRESS]`: one message through the whole pipeline,
in a real subprocess, against the module's database."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from tests.cli_helpers import altkraft, env_for
from tests.inbound import reports
from tests.inbound.conftest import BOUNCE_DOMAIN, FBL, inbound_settings, send_campaign

PEOPLE = [{"email": f"replayed{i}@example.net"} for i in range(3)]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink)
    return {**send_campaign(env, settings, PEOPLE, "Replayed"), "settings": settings}


def _replay(env, tmp_path, message: bytes, *args: str) -> dict:
    path = tmp_path / "message.eml"
    path.write_bytes(message)
    result = altkraft("inbound", "replay", str(path), *args, env=env_for(
        env.settings, ALTKRAFT_DELIVERY__BOUNCE_DOMAIN=BOUNCE_DOMAIN,
        ALTKRAFT_INBOUND__FBL_ADDRESSES=json.dumps([FBL])))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _state(env, subscriber_id: int) -> str:
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers.c.state).where(subscribers.c.id == subscriber_id)).scalar_one()


def test_replay_of_a_hard_bounce_prints_the_outcome_and_suppresses(env, world, sink, tmp_path):
    message = sink.by_recipient(PEOPLE[0]["email"])[0]
    outcome = _replay(env, tmp_path, reports.dsn(message.raw, recipient=PEOPLE[0]["email"]),
                      "--rcpt", message.envelope_from)
    assert {k: outcome[k] for k in ("state", "outcome", "bounce_class", "status", "suppressed",
                                    "campaign_id", "subscriber_id")} == \
        {"state": "processed", "outcome": "bounce", "bounce_class": "hard", "status": "5.1.1",
         "suppressed": True, "campaign_id": world["campaign_id"], "subscriber_id": world["ids"][0]}
    assert _state(env, world["ids"][0]) == "bounced"


def test_replay_takes_the_to_header_by_default(env, world, sink, tmp_path):
    message = sink.by_recipient(PEOPLE[1]["email"])[0]
    outcome = _replay(env, tmp_path, reports.arf(message.raw))      # To: the FBL address
    assert (outcome["rcpt"], outcome["outcome"], outcome["attributed_by"]) == \
        (FBL, "complaint", "list-unsubscribe")
    assert _state(env, world["ids"][1]) == "complained"


def test_replay_of_garbage_is_a_record_not_a_crash(env, world, tmp_path):
    outcome = _replay(env, tmp_path, b"\x00\xff not a message at all \r\n\r\n--", "--rcpt", FBL)
    assert outcome["state"] in ("unmatched", "failed", "review")
