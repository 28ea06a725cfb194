"""kill -9 of the whole sending service (`altkraft run`) at random points of a send, restarted
each time: nobody gets the campaign twice and every subscriber's row ends in a final state."""
from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter

import pytest
import requests

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.db.types import utcnow
from tests.campaigns.helpers import make_list, make_message
from tests.conftest import start_service
from tests.delivery.keys import write_keys
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.queue]
AUDIENCE = int(os.environ.get("AKTEST_CRASH_AUDIENCE", "600"))
SENDERS = 2
KILLS = 3


def add_people(env, list_id: int, count: int) -> None:
    from sqlalchemy import insert

    now = utcnow()
    with db.write(env.engine) as conn:
        ids = conn.execute(insert(subscribers).returning(subscribers.c.id), [
            {"email": f"crash{i}@example.org", "email_domain": "example.org", "state": "active",
             "custom": {}, "source": "test", "created_at": now, "updated_at": now}
            for i in range(count)]).scalars().all()
        conn.execute(insert(subscriber_lists), [
            {"list_id": list_id, "subscriber_id": sid, "status": "confirmed", "created_at": now,
             "updated_at": now, "confirmed_at": now} for sid in ids])


def kill_group(server) -> None:
    try:
        os.killpg(server.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait()


def test_kill_9_during_a_send_never_sends_twice(env):
    sink = SmtpSink().start()
    entries, _ = write_keys(env.data_dir / "dkim")
    extra = {"ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay(max_connections=SENDERS)]),
             "ALTKRAFT_DKIM__KEYS": json.dumps(entries),
             "ALTKRAFT_DELIVERY__PROCESSES": str(SENDERS),
             "ALTKRAFT_DELIVERY__BATCH_SIZE": "20",
             "ALTKRAFT_DELIVERY__RETRY_SECONDS": "0.5"}
    list_id, _ = make_list(env, "Crash list", [])
    add_people(env, list_id, AUDIENCE)
    message_id = make_message(env, html="<p>Hello {{ subscriber.email }}</p>", subject="Crash test")
    token = env.token("Manager")
    headers = {"Authorization": f"Bearer {token}"}
    server = start_service(env, extra_env=extra)
    rng = random.Random(int(os.environ.get("AKTEST_SEED", "5")))
    try:
        response = requests.post(f"{server.url}/api/v1/campaigns", headers=headers, timeout=30, json={
            "name": "Crash", "message_id": message_id, "lists": [list_id],
            "from_email": "news@example.com", "start_now": True})
        assert response.status_code == 201, response.text
        campaign_id = response.json()["id"]
        server = kill_while_sending(env, server, sink, extra, rng, KILLS, AUDIENCE)
        deadline = time.monotonic() + 180
        state = None
        while time.monotonic() < deadline:
            found = requests.get(f"{server.url}/api/v1/campaigns/{campaign_id}", headers=headers,
                                 timeout=30).json()
            state = found["state"]
            if state == "finished":
                break
            time.sleep(0.5)
        stats = found["stats"]
    finally:
        server.stop()
        sink.stop()
    assert state == "finished", (found, server.log.read_text()[-3000:])
    assert_once(stats, sink, AUDIENCE, KILLS * SENDERS)


def kill_while_sending(env, server, sink, extra: dict, rng, kills: int, audience: int):
    """kill -9 of the service `kills` times, each after a random number of further messages
    reached the sink, started again each time; returns the last one."""
    for _ in range(kills):
        target = len(sink.messages) + rng.randint(20, audience // (kills + 2))
        deadline = time.monotonic() + 60
        while len(sink.messages) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        kill_group(server)
        server = start_service(env, extra_env=extra)
    return server


def assert_once(stats: dict, sink, audience: int, sessions_killed: int) -> None:
    """Nobody got it twice, every row is final, at most one row in doubt per session killed."""
    counts = Counter(sink.recipients())
    assert [r for r, n in counts.items() if n > 1] == []
    assert stats["sent"] + stats["failed"] + stats["in_doubt"] + stats["skipped"] == audience
    assert stats["in_doubt"] <= sessions_killed
    # Every row recorded as sent reached the sink; in-doubt ones may or may not have.
    assert stats["sent"] <= len(counts) <= stats["sent"] + stats["in_doubt"]
