"""The automatic winner through the real service: `altkraft run` with its job consumer sends
the test, then the huey job queued for the decision time picks the winner and sends it."""
from __future__ import annotations

import time
from collections import Counter

import requests

from tests.campaigns.helpers import make_list, make_message

WAIT_HOURS = 0.005          # 18 s: the 4 test messages must be out before it ends, also on a loaded machine


def test_the_consumer_decides_at_the_time_and_sends_the_winner(env, service, sink):
    list_id, _ = make_list(env, "Service A/B", [{"email": f"svc{i}@example.org"} for i in range(10)])
    headers = {"Authorization": f"Bearer {env.token('Manager')}"}
    body = {"name": "Timed A/B", "message_id": make_message(env), "lists": [list_id],
            "from_email": "news@example.com", "start_now": True,
            "split_test": {"variants": [{"subject": "Early A"}, {"subject": "Early B"}],
                           "test_percent": 40, "metric": "opens", "wait_hours": WAIT_HOURS}}
    created = requests.post(service.url + "/api/v1/campaigns", json=body, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    url = f"{service.url}/api/v1/campaigns/{created.json()['id']}"

    def split() -> dict:
        return requests.get(url + "/split-test", headers=headers, timeout=10).json()
    deadline = time.monotonic() + 30
    while sum(v["delivered"] for v in split()["variants"]) < 4:
        assert time.monotonic() < deadline, split()
        time.sleep(0.3)
    found = split()
    assert (found["state"], found["held"]) == ("testing", 6)     # sent the test, holds the rest
    assert len(sink.messages) == 4
    deadline = time.monotonic() + 60
    while requests.get(url, headers=headers, timeout=10).json()["state"] != "finished":
        assert time.monotonic() < deadline, split()
        time.sleep(0.5)
    found = split()
    assert (found["state"], found["winner"], found["decided_by"]) == ("decided", 1, "automatic")
    assert Counter(str(m["Subject"]) for m in sink.messages) == {"Early A": 8, "Early B": 2}
