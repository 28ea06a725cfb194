"""The job queue with real huey consumers on the configured backend (AKTEST_QUEUE)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from altkraft_onprem import db, tasks
from altkraft_onprem.access import service as access
from tests.cli_helpers import env_for
from tests.conftest import QUEUE_KIND, start_service

pytestmark = pytest.mark.queue


@pytest.fixture(scope="module")
def real_queue(env):
    """The test process enqueues into the same storage the consumers read."""
    tasks.configure_queue(env.settings)
    tasks.huey.flush()
    yield tasks.huey
    tasks.huey.flush()
    tasks.configure_queue(env.settings, immediate=True)


def _start_worker(env, settings=None) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update(env_for(settings or env.settings, ALTKRAFT_QUEUE__WORKER_TYPE="thread",
                               ALTKRAFT_QUEUE__WORKERS="2"))
    log = open(env.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "altkraft_onprem.cli", "worker"],
                            env=environment, stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen, sig=signal.SIGINT, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def worker(env, real_queue):
    process = _start_worker(env)
    yield process
    _stop(process)


def _state(env, key: str) -> str | None:
    with db.read(env.engine) as conn:
        return access.get_state(conn, key)


def _wait_for_state(env, key: str, timeout: float = 30) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = _state(env, key)
        if value is not None:
            return value
        time.sleep(0.05)
    return None


def test_backend_is_the_configured_one(real_queue):
    expected = "RedisStorage" if QUEUE_KIND == "redis" else "SqliteStorage"
    assert type(real_queue.storage).__name__ == expected


def test_worker_runs_a_task_enqueued_here(worker):
    result = tasks.ping("hello")
    assert result.get(blocking=True, timeout=30) == "pong:hello"


def test_job_reaches_the_database_through_the_app(env, worker):
    run_id = uuid.uuid4().hex
    finished = tasks.diagnostics(run_id).get(blocking=True, timeout=30)
    assert _state(env, f"diagnostics:{run_id}:done") == finished


def test_queue_depth_counts_waiting_jobs(env, real_queue):
    # No consumer reads this queue name: the jobs stay put.
    other = env.settings.replace(queue__name=f"idle-{uuid.uuid4().hex[:8]}")
    tasks.configure_queue(other)
    try:
        for i in range(3):
            tasks.ping(str(i))
        assert tasks.queue_depth() == 3
    finally:
        tasks.huey.flush()
        tasks.configure_queue(env.settings)


@pytest.fixture()
def private_queue(env, real_queue):
    """A queue name only this test's consumer reads (the module's worker stays out of it)."""
    settings = env.settings.replace(queue__name=f"private-{uuid.uuid4().hex[:8]}")
    tasks.configure_queue(settings)
    yield settings
    tasks.huey.flush()
    tasks.configure_queue(env.settings)


@pytest.mark.slow
def test_worker_stop_lets_the_running_job_finish(env, private_queue):
    process = _start_worker(env, private_queue)
    try:
        run_id = uuid.uuid4().hex
        tasks.diagnostics(run_id, 3)
        assert _wait_for_state(env, f"diagnostics:{run_id}:started")
        assert _stop(process) == 0
        assert _state(env, f"diagnostics:{run_id}:done") is not None
    finally:
        _stop(process, signal.SIGKILL)


@pytest.mark.slow
def test_run_sigterm_lets_the_running_job_finish(env, private_queue):
    server = start_service(env, extra_env={"ALTKRAFT_QUEUE__NAME": private_queue["queue.name"]})
    try:
        run_id = uuid.uuid4().hex
        tasks.diagnostics(run_id, 3)
        assert _wait_for_state(env, f"diagnostics:{run_id}:started"), server.log.read_text()
        assert server.stop(signal.SIGTERM) == 0, server.log.read_text()
        assert _state(env, f"diagnostics:{run_id}:done") is not None, server.log.read_text()
    finally:
        server.stop(signal.SIGKILL)
