"""The huey instance and the periodic jobs.

Tasks are declared at import time against `huey`; its storage is chosen from the settings by
`configure_queue` (SQLite file in the data directory, or Redis) before anything is enqueued
or consumed. Each task runs inside an app context (`job` decorator) so that it reaches the
database exactly as a request does.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from huey import Huey, crontab
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from altkraft_onprem.config import Settings

QUEUE_NAME = "altkraft"

# Storage replaced by configure_queue(); until then nothing can be enqueued by accident.
huey = Huey(QUEUE_NAME, storage_class=MemoryStorage, utc=True)
_app = None


def configure_queue(settings: Settings, *, immediate: bool = False) -> Huey:
    if immediate:
        huey.immediate = True
        return huey
    huey.immediate = False
    if settings["queue.backend"] == "redis":
        huey.storage = RedisStorage(settings["queue.name"], url=settings["queue.redis_url"])
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        huey.storage = SqliteStorage(settings["queue.name"], filename=str(settings.data_dir / "queue.db"))
    return huey


def bind_app(app) -> None:
    """The Flask app whose context jobs run in (set by create_app's caller in each process)."""
    global _app
    _app = app


def app_for_jobs():
    if _app is None:
        raise RuntimeError("no app bound to the job queue: call tasks.bind_app(app)")
    return _app


def job(*task_args, **task_kwargs) -> Callable:
    """huey.task that runs inside the bound app's context."""
    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with app_for_jobs().app_context():
                return fn(*args, **kwargs)
        return huey.task(*task_args, **task_kwargs)(run)
    return register


def periodic(cron) -> Callable:
    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run():
            with app_for_jobs().app_context():
                return fn()
        return huey.periodic_task(cron)(run)
    return register


def queue_depth() -> int:
    return huey.pending_count()


@job()
def ping(value: str) -> str:
    """A no-op round trip used by /readyz-style checks and the queue tests."""
    return f"pong:{value}"


@job()
def diagnostics(run_id: str, sleep_seconds: float = 0.0) -> str:
    """A round trip through queue, worker and database: marks `diagnostics:RUN_ID:started`,
    sleeps (at most a minute; a long job for checking graceful stops), then marks
    `diagnostics:RUN_ID:done` in app_state. Returns the finishing time."""
    import time

    from altkraft_onprem import db
    from altkraft_onprem.access import service as access
    from altkraft_onprem.db.types import utcnow

    engine = db.get_engine()
    with db.write(engine) as conn:
        access.put_state(conn, f"diagnostics:{run_id}:started", utcnow().isoformat())
    time.sleep(min(max(sleep_seconds, 0.0), 60.0))
    finished = utcnow().isoformat()
    with db.write(engine) as conn:
        access.put_state(conn, f"diagnostics:{run_id}:done", finished)
    return finished


@periodic(crontab(minute="*/10"))
def purge_expired_access_rows() -> None:
    """Old login attempts and idle sessions go away."""
    from datetime import timedelta

    from sqlalchemy import delete

    from altkraft_onprem import db
    from altkraft_onprem.access.models import login_attempts, user_sessions
    from altkraft_onprem.config import current_settings
    from altkraft_onprem.db.types import utcnow

    hours = current_settings()["security.session_hours"]
    with db.write(db.get_engine()) as conn:
        conn.execute(delete(login_attempts).where(login_attempts.c.at < utcnow() - timedelta(days=1)))
        conn.execute(delete(user_sessions).where(
            user_sessions.c.last_seen_at < utcnow() - timedelta(hours=hours)))


def load_task_modules() -> None:
    """Import every domain's jobs so that a consumer knows all task names."""
    import altkraft_onprem.jobs_all  # noqa: F401


@huey.signal()
def _count_outcome(signal, task, exc=None):
    from huey import signals

    from altkraft_onprem import metrics

    if signal in (signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_RETRYING):
        metrics.count_job(task.name, signal)
