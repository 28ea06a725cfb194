"""The queue as the processes that run it see it, and the appliance's own jobs.

A composition root: the server, the CLI, the installer's doctor and the tests configure the
queue, bind the app and load every domain's tasks through this module. The queue itself (the
huey instance, `@job`, `@periodic`) is jobqueue.py, which the domains' jobs.py build on.
"""
from __future__ import annotations

import time

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.jobqueue import bind_app, configure_queue, huey, job, queue_depth

__all__ = ["bind_app", "configure_queue", "diagnostics", "huey", "load_task_modules", "ping",
           "queue_depth"]


@job()
def ping(value: str) -> str:
    """A no-op round trip used by /readyz-style checks and the queue tests."""
    return f"pong:{value}"


@job()
def diagnostics(run_id: str, sleep_seconds: float = 0.0) -> str:
    """A round trip through queue, worker and database: marks `diagnostics:RUN_ID:started`,
    sleeps (at most a minute; a long job for checking graceful stops), then marks
    `diagnostics:RUN_ID:done` in app_state. Returns the finishing time."""
    engine = db.get_engine()
    with db.write(engine) as conn:
        access.put_state(conn, f"diagnostics:{run_id}:started", utcnow().isoformat())
    time.sleep(min(max(sleep_seconds, 0.0), 60.0))
    finished = utcnow().isoformat()
    with db.write(engine) as conn:
        access.put_state(conn, f"diagnostics:{run_id}:done", finished)
    return finished


def load_task_modules() -> None:
    """Import every domain's jobs so that a consumer knows all task names."""
    import altkraft_onprem.jobs_all  # noqa: F401  (jobs_all imports this module: load it late)
