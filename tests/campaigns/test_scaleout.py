"""Scaled out as the docs say — two `altkraft run` and one `altkraft worker` on one database
and queue — with the process that is sending killed (-9) mid-send and started again: one send
run per campaign at a time and the relay's max_connections hold for the whole installation.
The TCP connections to the relay are sampled all along; nobody gets the campaign twice."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.campaigns.models import deliveries
from tests.campaigns.helpers import make_list, make_message
from tests.campaigns.test_crash import add_people
from tests.conftest import free_port, service_environment, start_process, start_service
from tests.delivery.keys import write_keys
from tests.smtp_sink import SmtpSink

pytestmark = [pytest.mark.slow, pytest.mark.queue]
AUDIENCE = int(os.environ.get("AKTEST_SCALEOUT_AUDIENCE", "1200"))
MAX_CONNECTIONS = 2
KILLS = 2


class ConnectionSampler(threading.Thread):
    """Counts established TCP connections to a port every few milliseconds (their client
    ends, as the kernel lists them for every process); keeps the most seen at once."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = f"{port:04X}"
        self.most = 0
        self.samples = 0
        self.done = threading.Event()

    def established(self) -> int:
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = open(table).read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[2].rsplit(":", 1)[1] == self.port and fields[3] == "01":
                    count += 1
        return count

    def run(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, self.established())
            self.samples += 1
            time.sleep(0.005)


class Installation:
    """The three processes; each can be killed and started again."""

    def __init__(self, env, extra: dict):
        self.env, self.extra = env, extra
        self.runs = [start_service(env, extra_env=extra) for _ in range(2)]
        self.worker = self._start_worker()

    def _start_worker(self):
        environment = service_environment(self.env, free_port(), self.extra)
        return start_process(self.env, f"worker-{time.monotonic_ns()}", ["worker"], environment)

    def groups(self) -> list[int]:
        return [server.process.pid for server in self.runs] + [self.worker.pid]

    def kill_and_restart(self, group: int) -> None:
        """kill -9 of that process group (the service and every sender it forked), then a
        fresh one in its place."""
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if group == self.worker.pid:
            self.worker.wait()
            self.worker = self._start_worker()
            return
        index = next(i for i, server in enumerate(self.runs) if server.process.pid == group)
        self.runs[index].process.wait()
        self.runs[index] = start_service(self.env, extra_env=self.extra)

    def stop(self) -> None:
        for server in self.runs:
            server.stop()
        self.worker.send_signal(signal.SIGINT)
        try:
            self.worker.wait(40)
        except Exception:  # noqa: BLE001 - a stop that hangs must not hide the test's result
            self.worker.kill()


def sending_group(env, campaign_id: int, groups: list[int]) -> int | None:
    """The process group of a sender that holds rows of the campaign now."""
    with db.read(env.engine) as conn:
        owners = conn.execute(select(deliveries.c.lease_owner).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == "leased")
            .distinct()).scalars().all()
    for owner in owners:
        try:
            group = os.getpgid(int(owner.split(":")[1]))
        except (ProcessLookupError, ValueError, IndexError):
            continue
        if group in groups:
            return group
    return None


def test_killed_and_restarted_services_keep_one_run_and_the_relays_connection_limit(env):
    sink = SmtpSink().start()
    sampler = ConnectionSampler(sink.port)
    entries, _ = write_keys(env.data_dir / "dkim")
    extra = {"ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay(max_connections=MAX_CONNECTIONS)]),
             "ALTKRAFT_DKIM__KEYS": json.dumps(entries),
             "ALTKRAFT_DELIVERY__BATCH_SIZE": "20",
             "ALTKRAFT_DELIVERY__RETRY_SECONDS": "0.5"}
    list_id, _ = make_list(env, "Scale-out list", [])
    add_people(env, list_id, AUDIENCE)
    message_id = make_message(env, html="<p>Hello {{ subscriber.email }}</p>", subject="Scale-out")
    headers = {"Authorization": f"Bearer {env.token('Manager')}"}
    installation = Installation(env, extra)
    sampler.start()
    killed = 0
    try:
        response = requests.post(f"{installation.runs[0].url}/api/v1/campaigns", headers=headers,
                                 timeout=30, json={"name": "Scale-out", "message_id": message_id,
                                                   "lists": [list_id], "from_email": "news@example.com",
                                                   "start_now": True})
        assert response.status_code == 201, response.text
        campaign_id = response.json()["id"]
        deadline = time.monotonic() + 120
        while killed < KILLS and time.monotonic() < deadline:
            target = len(sink.messages) + AUDIENCE // (KILLS + 2)
            while len(sink.messages) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            # The sender may be between two batches (no row leased): look again for it, without
            # moving the target on — a slow host would otherwise see the campaign end first.
            group = sending_group(env, campaign_id, installation.groups())
            while group is None and time.monotonic() < deadline:
                time.sleep(0.01)
                group = sending_group(env, campaign_id, installation.groups())
            if group is None:
                break
            installation.kill_and_restart(group)
            killed += 1
        deadline = time.monotonic() + 240
        found = {}
        while time.monotonic() < deadline:
            found = requests.get(f"{installation.runs[0].url}/api/v1/campaigns/{campaign_id}",
                                 headers=headers, timeout=30).json()
            if found["state"] == "finished":
                break
            time.sleep(0.5)
    finally:
        sampler.done.set()
        installation.stop()
        sink.stop()
    assert killed == KILLS
    assert found.get("state") == "finished", found
    assert sampler.samples > 100
    assert sampler.most <= MAX_CONNECTIONS, f"{sampler.most} connections to a relay allowing {MAX_CONNECTIONS}"
    stats = found["stats"]
    counts = Counter(sink.recipients())
    assert [r for r, n in counts.items() if n > 1] == []
    assert stats["sent"] + stats["failed"] + stats["in_doubt"] + stats["skipped"] == AUDIENCE
    assert stats["in_doubt"] <= KILLS * MAX_CONNECTIONS        # at most the sessions open at a kill
    assert stats["sent"] <= len(counts) <= stats["sent"] + stats["in_doubt"]
