"""kill -9 of the sending service during a local-time campaign (rows due per zone, the claim
leaving later zones alone), restarted each time: nobody gets it twice, nobody in a zone
still to come gets it early, and once that zone is due it goes out once too."""
from __future__ import annotations

import json
import os
import random
import time

import pytest
import requests
from sqlalchemy import insert, select, update

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from tests.campaigns.helpers import make_list, make_message
from tests.campaigns.test_crash import assert_once, kill_while_sending
from tests.conftest import start_service
from tests.delivery.keys import write_keys
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.queue]
AUDIENCE = int(os.environ.get("AKTEST_CRASH_AUDIENCE", "600"))
LATER = AUDIENCE // 4                 # in a zone three hours west: not due during the kills
SENDERS = 2
KILLS = 3


def add_zoned_people(env, list_id: int) -> None:
    """Subscribers in UTC (their field), in no zone at all (the fallback, UTC), in Etc/GMT+3."""
    now = utcnow()
    zones = ["Etc/UTC", None, "Etc/UTC"]
    people = [{"email": f"local{i}@example.org", "email_domain": "example.org", "state": "active",
               "timezone": "Etc/GMT+3" if i < LATER else zones[i % 3],
               "custom": {}, "source": "test", "created_at": now, "updated_at": now}
              for i in range(AUDIENCE)]
    random.Random(7).shuffle(people)            # zones interleaved by subscriber id
    with db.write(env.engine) as conn:
        ids = conn.execute(insert(subscribers).returning(subscribers.c.id), people).scalars().all()
        conn.execute(insert(subscriber_lists), [
            {"list_id": list_id, "subscriber_id": sid, "status": "confirmed", "created_at": now,
             "updated_at": now, "confirmed_at": now} for sid in ids])


def stats_of(server, headers, campaign_id: int) -> dict:
    return requests.get(f"{server.url}/api/v1/campaigns/{campaign_id}", headers=headers,
                        timeout=30).json()


def test_kill_9_during_a_local_time_send_never_sends_twice_nor_early(env):
    sink = SmtpSink().start()
    entries, _ = write_keys(env.data_dir / "dkim")
    extra = {"ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay(max_connections=SENDERS)]),
             "ALTKRAFT_DKIM__KEYS": json.dumps(entries),
             "ALTKRAFT_DELIVERY__PROCESSES": str(SENDERS),
             "ALTKRAFT_DELIVERY__BATCH_SIZE": "20",
             "ALTKRAFT_DELIVERY__RETRY_SECONDS": "0.5"}
    list_id, _ = make_list(env, "Local crash list", [])
    add_zoned_people(env, list_id)
    message_id = make_message(env, html="<p>Hello {{ subscriber.email }}</p>", subject="Local crash")
    headers = {"Authorization": f"Bearer {env.token('Manager')}"}
    server = start_service(env, extra_env=extra)
    rng = random.Random(int(os.environ.get("AKTEST_SEED", "5")))
    due_now = AUDIENCE - LATER
    try:
        response = requests.post(f"{server.url}/api/v1/campaigns", headers=headers, timeout=30, json={
            "name": "Local crash", "message_id": message_id, "lists": [list_id],
            "from_email": "news@example.com", "start_now": True,
            "send_at_local": {"time": utcnow().strftime("%H:%M"), "quiet_hours": None,
                              "fallback_timezone": "UTC"}})
        assert response.status_code == 201, response.text
        campaign_id = response.json()["id"]
        server = kill_while_sending(env, server, sink, extra, rng, KILLS, due_now)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            found = stats_of(server, headers, campaign_id)
            stats = found["stats"]
            if stats["sent"] + stats["failed"] + stats["in_doubt"] + stats["skipped"] == due_now:
                break
            time.sleep(0.5)
        early = [r for r in sink.recipients() if r.startswith("local") and
                 int(r[5:].split("@")[0]) < LATER]
        assert early == [], "a later zone's recipient got it early"
        assert found["state"] == "running"
        assert [(z["zone"], z["recipients"]) for z in stats["zones_to_come"]] == [("Etc/GMT+3", LATER)]

        # Three hours on: the later zone is due (made so here), and a pause and resume starts
        # the run at once instead of at its planned time.
        with db.write(env.engine) as conn:
            conn.execute(update(deliveries).where(deliveries.c.campaign_id == campaign_id,
                                                  deliveries.c.state == "queued")
                         .values(next_attempt_at=utcnow()))
        for action in ("pause", "resume"):
            assert requests.post(f"{server.url}/api/v1/campaigns/{campaign_id}/{action}",
                                 headers=headers, timeout=30).status_code == 200
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            found = stats_of(server, headers, campaign_id)
            if found["state"] == "finished":
                break
            time.sleep(0.5)
        stats = found["stats"]
    finally:
        server.stop()
        sink.stop()
    assert found["state"] == "finished", (found, server.log.read_text()[-3000:])
    assert_once(stats, sink, AUDIENCE, KILLS * SENDERS)
    with db.read(env.engine) as conn:
        zones = set(conn.execute(select(deliveries.c.zone).where(
            deliveries.c.campaign_id == campaign_id)).scalars())
    assert len(zones) == 3
