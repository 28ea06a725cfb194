"""The job queue: the huey instance, and `@job` / `@periodic` for the domains' jobs.py.

Tasks are declared at import time against `huey`; its storage is chosen from the settings by
`configure_queue` (SQLite file in the data directory, or Redis) before anything is enqueued
or consumed. Each task runs inside an app context (`job` decorator) so that it reaches the
database exactly as a request does. Which tasks a consumer knows is decided at the top
(jobs_all.py imports every domain's jobs).
"""
from __future__ import annotations

import functools
import threading
import time
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


class Waker:
    """Calls `enqueue(*key)` (queues the job that acts on what a commit wrote) at most every
    `interval` seconds per key in this process. One asked for meanwhile is made when the
    interval is up, so whatever was committed before a wake-up is seen by a job that starts
    after it — while a burst of commits (a message stored, a transactional request queued)
    costs one queue write per interval instead of one each. The timer is not a daemon: a
    process that stops still makes the wake-ups it owes (at most `interval` later)."""

    def __init__(self, enqueue: Callable, interval: float):
        self.enqueue, self.interval = enqueue, interval
        self._last: dict[tuple, float] = {}
        self._pending: set[tuple] = set()
        self._lock = threading.Lock()

    def __call__(self, *key) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._last.get(key, float("-inf")) + self.interval - now
            if wait > 0:
                if key not in self._pending:
                    self._pending.add(key)
                    threading.Timer(wait, self._later, key).start()
                return
            self._last[key] = now
        self.enqueue(*key)

    def _later(self, *key) -> None:
        with self._lock:
            self._pending.discard(key)
            self._last[key] = time.monotonic()
        self.enqueue(*key)


def queue_depth() -> int:
    return huey.pending_count()


@huey.signal()
def _count_outcome(signal, task, exc=None):
    if signal in (signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR, signals.SIGNAL_RETRYING):
        metrics.count_job(task.name, signal)
