"""An import whose worker is killed outright (SIGKILL) does not stay "running" forever."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.audience.importer import jobs, runner, service, watchdog
from altkraft_onprem.audience.importer.models import imports
from altkraft_onprem.audience.models import subscribers

from .conftest import ACTOR

ROWS = 200_000
# The worker, as a separate process: the same call the huey job makes.
WORKER = """
import sys
from altkraft_onprem import db
from altkraft_onprem.audience.importer import runner
runner.run_import(db.build_engine(sys.argv[1]), int(sys.argv[2]), batch_size=500)
"""


def big_file(path, tag: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("email,first_name\n")
        out.writelines(f"k{n}-{tag}@example.com,Name{n % 97}\n" for n in range(ROWS))


def queue(env, path) -> int:
    with db.write(env.engine) as conn:
        return service.create_import(conn, ACTOR, filename=path.name, path=path, list_ids=[])


def row(env, import_id: int):
    with db.read(env.engine) as conn:
        return conn.execute(select(imports).where(imports.c.id == import_id)).one()


def imported(env, tag: str) -> int:
    with db.read(env.engine) as conn:
        return conn.execute(select(func.count()).select_from(subscribers).where(
            subscribers.c.email.like(f"%-{tag}@example.com"))).scalar_one()


def kill_mid_import(env, import_id: int) -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, env.database_url, str(import_id)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while row(env, import_id).rows_done < 2000:
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stderr.close()


def test_a_killed_import_is_failed_with_its_progress_and_a_rerun_continues_it(env, tmp_path):
    tag = uuid.uuid4().hex[:8]
    path = tmp_path / "big.csv"
    big_file(path, tag)
    import_id = queue(env, path)
    kill_mid_import(env, import_id)
    stuck = row(env, import_id)
    assert stuck.state == "running" and stuck.heartbeat_at is not None
    assert 0 < stuck.rows_done < ROWS
    assert imported(env, tag) == stuck.rows_done          # every batch counted was committed
    # A recent heartbeat is not yet a dead worker.
    assert import_id not in watchdog.fail_stale_imports(env.engine)
    assert row(env, import_id).state == "running"
    assert import_id in watchdog.fail_stale_imports(env.engine, older_than=timedelta(0))
    failed = row(env, import_id)
    assert failed.state == "failed" and failed.finished_at is not None
    assert failed.error.startswith(f"the worker stopped; {stuck.rows_done} rows were imported; "
                                   "re-run the file to continue")
    again = runner.run_import(env.engine, queue(env, path))
    assert again["state"] == "finished"
    assert again["counts"]["unchanged"] == stuck.rows_done
    assert again["counts"]["added"] == ROWS - stuck.rows_done
    assert imported(env, tag) == ROWS


def test_the_periodic_sweep_leaves_live_imports_alone(env, tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("email\nlive@example.com\n")
    import_id = queue(env, path)
    with db.write(env.engine) as conn:     # as a worker leaves it right after claiming it
        conn.execute(imports.update().where(imports.c.id == import_id).values(
            state="running", started_at=watchdog.utcnow(), heartbeat_at=watchdog.utcnow()))
    jobs.fail_stale_imports()              # immediate queue: runs here, with the real threshold
    assert row(env, import_id).state == "running"
    with db.write(env.engine) as conn:
        conn.execute(imports.update().where(imports.c.id == import_id).values(
            heartbeat_at=watchdog.utcnow() - watchdog.STALE_AFTER - timedelta(seconds=1)))
    jobs.fail_stale_imports()
    assert row(env, import_id).state == "failed"
    assert row(env, import_id).error.startswith("the worker stopped; 0 rows were imported")


def test_the_heartbeat_thread_stamps_a_running_import(env, tmp_path):
    path = tmp_path / "beat.csv"
    path.write_text("email\nbeat@example.com\n")
    import_id = queue(env, path)
    with db.write(env.engine) as conn:
        conn.execute(imports.update().where(imports.c.id == import_id).values(state="running"))
    with watchdog.Heartbeat(env.engine, import_id, interval=0.05):
        deadline = time.monotonic() + 10
        while row(env, import_id).heartbeat_at is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with db.write(env.engine) as conn:
        conn.execute(imports.update().where(imports.c.id == import_id).values(state="failed"))
