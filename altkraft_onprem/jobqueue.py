"""The job queue: the huey instance, and `@job` / `@periodic` for the domains' jobs.py.

Tasks are declared at import time against `huey`; its storage is chosen from the settings by
`configure_queue` (SQLite file in the data directory, or Redis) before anything is enqueued
or consumed. Each task runs inside an app context (`job` decorator) so that it reaches the
database exactly as a request does. Which tasks a consumer knows is decided at the top
(jobs_all.py imports every domain's jobs).
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from huey import Huey, signals
from huey.storage import MemoryStorage, RedisStorage, SqliteStorage

from altkraft_onprem import metrics
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


@huey.signal()
def _count_outcome(signal, task, exc=None):
    if signal in (signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_RETRYING):
        metrics.count_job(task.name, signal)
