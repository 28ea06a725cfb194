"""kill -9 of the sending service while a warming domain's campaign sends what its quota
released, restarted each time: nobody gets it twice, nothing held is sent, the held rows stay
held; the next day's release sends them, once each."""
from __future__ import annotations

import json
import os
import random
import time
from datetime import timedelta

import pytest
import requests
from sqlalchemy import insert

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.deliverability import warmup
from tests.campaigns.helpers import make_list, make_message
from tests.campaigns.test_crash import assert_once, kill_while_sending
from tests.conftest import start_service
from tests.delivery.keys import write_keys
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.queue]
PER_PROVIDER = int(os.environ.get("AKTEST_CRASH_AUDIENCE", "600")) // 3
QUOTA = PER_PROVIDER * 3 // 5                   # released on day 1; the rest is held
DOMAINS = ("gmail.com", "outlook.com", "example.org")
SENDERS = 2
KILLS = 3


def add_people(env, list_id: int) -> None:
    now = utcnow()
    people = [{"email": f"warm{i}@{domain}", "email_domain": domain, "state": "active",
               "custom": {}, "source": "test", "created_at": now, "updated_at": now}
              for domain in DOMAINS for i in range(PER_PROVIDER)]
    random.Random(3).shuffle(people)
    with db.write(env.engine) as conn:
        ids = conn.execute(insert(subscribers).returning(subscribers.c.id), people).scalars().all()
        conn.execute(insert(subscriber_lists), [
            {"list_id": list_id, "subscriber_id": sid, "status": "confirmed", "created_at": now,
             "updated_at": now, "confirmed_at": now} for sid in ids])


def wait_for(server, headers, campaign_id: int, done, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    found = {}
    while time.monotonic() < deadline:
        found = requests.get(f"{server.url}/api/v1/campaigns/{campaign_id}", headers=headers,
                             timeout=30).json()
        if done(found):
            break
        time.sleep(0.5)
    return found


def final(stats: dict) -> int:
    return stats["sent"] + stats["failed"] + stats["in_doubt"] + stats["skipped"]


def test_kill_9_while_a_warm_up_releases_sends_each_once_and_nothing_held(env):
    sink = SmtpSink().start()
    entries, _ = write_keys(env.data_dir / "dkim")
    domains = [{"domain": "example.com", "warmup": True, "warmup_started_on": utcnow().date().isoformat()}]
    curve = [QUOTA, PER_PROVIDER]
    extra = {"ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay(max_connections=SENDERS)]),
             "ALTKRAFT_DKIM__KEYS": json.dumps(entries),
             "ALTKRAFT_DELIVERY__PROCESSES": str(SENDERS),
             "ALTKRAFT_DELIVERY__BATCH_SIZE": "20",
             "ALTKRAFT_DELIVERY__RETRY_SECONDS": "0.5",
             "ALTKRAFT_DELIVERY__SENDING_DOMAINS": json.dumps(domains),
             "ALTKRAFT_DELIVERABILITY__WARMUP_CURVE": json.dumps(curve)}
    settings = env.settings.replace(delivery__sending_domains=domains, deliverability__warmup_curve=curve)
    list_id, _ = make_list(env, "Warm-up crash list", [])
    add_people(env, list_id)
    message_id = make_message(env, html="<p>Hello {{ subscriber.email }}</p>", subject="Warm-up crash")
    headers = {"Authorization": f"Bearer {env.token('Manager')}"}
    server = start_service(env, extra_env=extra)
    rng = random.Random(int(os.environ.get("AKTEST_SEED", "5")))
    released = QUOTA * len(DOMAINS)
    try:
        response = requests.post(f"{server.url}/api/v1/campaigns", headers=headers, timeout=30, json={
            "name": "Warm-up crash", "message_id": message_id, "lists": [list_id],
            "from_email": "news@example.com", "start_now": True})
        assert response.status_code == 201, response.text
        campaign_id = response.json()["id"]
        server = kill_while_sending(env, server, sink, extra, rng, KILLS, released)
        found = wait_for(server, headers, campaign_id, lambda f: final(f["stats"]) == released)
        assert found["state"] == "running" and final(found["stats"]) == released, found
        assert found["stats"]["held_warmup"] == PER_PROVIDER * len(DOMAINS) - released
        assert sorted((p["provider"], p["held"], p["released_today"]) for p in found["warmup"]["providers"]) == [
            (name, PER_PROVIDER - QUOTA, QUOTA) for name in ("gmail", "other", "outlook")]
        counts = {domain: sum(1 for r in set(sink.recipients()) if r.endswith("@" + domain))
                  for domain in DOMAINS}
        assert all(n <= QUOTA for n in counts.values()), counts

        # The next day: the rest is released (day 2's quota covers it) and the run woken.
        with db.write(env.engine) as conn:
            assert warmup.release(conn, settings, campaign_id, now=utcnow() + timedelta(days=1)) == \
                PER_PROVIDER * len(DOMAINS) - released
        for action in ("pause", "resume"):
            assert requests.post(f"{server.url}/api/v1/campaigns/{campaign_id}/{action}",
                                 headers=headers, timeout=30).status_code == 200
        found = wait_for(server, headers, campaign_id, lambda f: f["state"] == "finished")
    finally:
        server.stop()
        sink.stop()
    assert found["state"] == "finished", (found, server.log.read_text()[-3000:])
    assert_once(found["stats"], sink, PER_PROVIDER * len(DOMAINS), KILLS * SENDERS)
