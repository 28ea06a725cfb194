"""kill -9 of the whole service (`altkraft run`: web, job consumer, runner, senders) at random
points while a workflow runs people through update -> send email -> goal, restarted each
time: no step runs twice, no one gets the email twice, no enrollment is lost."""
from __future__ import annotations

import json
import os
import random
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.automation.workflow_models import enrollments, steps
from altkraft_onprem.campaigns.models import deliveries
from tests.campaigns.helpers import make_message
from tests.campaigns.test_crash import add_people, kill_group
from tests.conftest import start_service
from tests.delivery.keys import write_keys
from tests.smtp_sink import SmtpSink

from .helpers import a_list, chain

pytestmark = [pytest.mark.slow, pytest.mark.queue]
AUDIENCE = int(os.environ.get("AKTEST_CRASH_AUDIENCE", "300"))
KILLS = 3


def test_kill_9_while_a_workflow_runs_never_repeats_a_step_or_an_email(env):
    sink = SmtpSink().start()
    entries, _ = write_keys(env.data_dir / "dkim")
    extra = {"ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay(max_connections=2)]),
             "ALTKRAFT_DKIM__KEYS": json.dumps(entries), "ALTKRAFT_DELIVERY__PROCESSES": "2",
             "ALTKRAFT_DELIVERY__BATCH_SIZE": "20"}
    list_id = a_list(env)
    add_people(env, list_id, AUDIENCE)
    message_id = make_message(env, html="<p>Hello {{ subscriber.email }}</p>", subject="Crash flow")
    definition = chain(("mark", "update_fields", {"fields": {"company": "seen"}}),
                       ("mail", "send_email", {"message_id": message_id, "from_email": "news@example.com"}),
                       ("won", "goal", {"name": "mailed"}))
    headers = {"Authorization": f"Bearer {env.token('Administrator')}"}
    server = start_service(env, extra_env=extra)
    rng = random.Random(int(os.environ.get("AKTEST_SEED", "7")))
    try:
        created = requests.post(f"{server.url}/api/v1/workflows", json=definition, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]
        assert requests.post(f"{server.url}/api/v1/workflows/{workflow_id}/publish", json={},
                             headers=headers, timeout=30).status_code == 200
        segment = requests.post(f"{server.url}/api/v1/segments", headers=headers, timeout=30, json={
            "name": f"crash-{workflow_id}", "conditions": {"op": "and", "rules": [
                {"list": list_id, "operator": "member"}]}})
        assert segment.status_code == 201, segment.text
        enrolled = requests.post(f"{server.url}/api/v1/workflows/{workflow_id}/enroll", headers=headers,
                                 json={"segment_id": segment.json()["id"]}, timeout=120)
        assert enrolled.status_code == 202 and enrolled.json()["entered"] == AUDIENCE, enrolled.text
        for _ in range(KILLS):
            target = len(sink.messages) + rng.randint(10, AUDIENCE // (KILLS + 2))
            deadline = time.monotonic() + 60
            while len(sink.messages) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            kill_group(server)
            server = start_service(env, extra_env=extra)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with db.read(env.engine) as conn:
                active = conn.execute(select(func.count()).select_from(enrollments).where(
                    enrollments.c.workflow_id == workflow_id, enrollments.c.state == "active")).scalar_one()
                unsent = conn.execute(select(func.count()).select_from(deliveries).where(
                    deliveries.c.state.in_(("queued", "leased")),
                    deliveries.c.subscriber_id.in_(select(enrollments.c.subscriber_id).where(
                        enrollments.c.workflow_id == workflow_id)))).scalar_one()
            if not active and not unsent:
                break
            time.sleep(0.5)
    finally:
        kill_group(server)
        sink.stop()
    with db.read(env.engine) as conn:
        states = Counter(conn.execute(select(enrollments.c.state).where(
            enrollments.c.workflow_id == workflow_id)).scalars())
        per_person = Counter(conn.execute(select(steps.c.enrollment_id).where(
            steps.c.workflow_id == workflow_id)).scalars())
        rows = Counter(conn.execute(select(deliveries.c.state).join(
            enrollments, enrollments.c.subscriber_id == deliveries.c.subscriber_id).where(
            enrollments.c.workflow_id == workflow_id)).scalars())
    assert states == {"done": AUDIENCE}, states                  # no enrollment lost
    assert set(per_person.values()) == {3}                        # every step once
    received = Counter(rcpt for m in sink.messages for rcpt in m.envelope_to)
    assert max(received.values()) == 1, received.most_common(3)   # no email twice
    assert rows["sent"] + rows["in_doubt"] == AUDIENCE, rows
    assert len(received) >= rows["sent"]
