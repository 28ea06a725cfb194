"""Background work of inbound mail: the pipeline over the intake. The receiver wakes it after
each group of stored messages; a sweep every minute catches anything a lost wake-up left."""
from __future__ import annotations

import time

from huey import crontab

from altkraft_onprem import db, jobqueue
from altkraft_onprem.config import current_settings

from . import imap, service

# One job drains the intake for at most this long, then queues its successor, so that a
# flood of bounces never occupies a worker for good.
RUN_SECONDS = 60.0


def drain(engine, settings, seconds: float = RUN_SECONDS) -> tuple[int, bool]:
    """Processes stored messages until none is left to take or time is up: (applied, more
    left). What other workers have leased is theirs (a dead one's is taken over)."""
    deadline = time.monotonic() + seconds
    applied = 0
    while time.monotonic() < deadline:
        done = service.process_pending(engine, settings)
        applied += len(done)
        if not done:
            return applied, False
    return applied, True


@jobqueue.job()
def process_inbound() -> int:
    applied, more = drain(db.get_engine(), current_settings())
    if more:
        process_inbound()
    return applied


@jobqueue.periodic(crontab(minute="*"))
def sweep_inbound() -> None:
    if service.waiting(db.get_engine()):
        process_inbound()


@jobqueue.periodic(crontab(minute="*"))
def poll_imap() -> None:
    """Every configured IMAP mailbox, once a minute."""
    settings = current_settings()
    if settings["inbound.imap"]:
        imap.poll_all(db.get_engine(), settings)
