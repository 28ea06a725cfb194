"""Background work of automation: dispatching the outbox, sending webhooks, the minute tick.

The queue only wakes these jobs; what they act on is in the database (outbox rows,
deliveries), so a lost or doubled wake-up changes nothing but latency, and the minute tick
(and a consumer's start) picks up whatever a crash left behind.
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from huey import crontab

from altkraft_onprem import db, jobqueue
from altkraft_onprem.access import service as access
from altkraft_onprem.campaigns.ledger import owner_name
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow

from . import (
    bulk,
    interest,
    outbox,
    runner,
    scheduled,
    segment_watch,
    staff_notice,
    triggers,
    webhook_sender,
    webhooks,
)

log = logging.getLogger("altkraft.automation")
# Dispatched outbox rows are kept this long (for looking into what happened), then purged.
OUTBOX_KEEP_DAYS = 7
_running = threading.local()


def wake() -> None:
    """After a commit that wrote outbox rows or enrolled people: act on them soon."""
    if getattr(_running, "active", False):
        _running.again = True           # the loop running on this thread goes round again
        return
    try:
        dispatch_outbox()
    except Exception:  # noqa: BLE001 - the minute tick does what a lost wake-up left
        log.exception("could not queue the automation dispatcher")


FAN_OUTS: list = [webhooks.fan_out, lambda conn, rows: triggers.fan_out(conn, rows, wake=wake)]
interest.add_source(triggers.interest)


def dispatch_now(engine=None) -> int:
    """Until nothing is left: dispatch the outbox, run the workflow steps that are due,
    send the webhooks that are due. Wake-ups from this thread meanwhile only ask for
    another round (no nesting)."""
    engine = engine or db.get_engine()
    settings = current_settings()
    _running.active = True
    done = 0
    try:
        while True:
            _running.again = False
            done += outbox.dispatch(engine, FAN_OUTS)
            if bulk.run_due(engine, wake=wake, max_chunks=1):      # a chunk, then the steps
                _running.again = True
            done += runner.run_due(engine, settings, owner_name(), wake=wake)
            if not _running.again:
                break
    finally:
        _running.active = False
    deliver_now(engine)
    return done


def deliver_now(engine=None) -> int:
    return webhook_sender.deliver_due(engine or db.get_engine(), current_settings(), owner_name())


@jobqueue.job()
def dispatch_outbox() -> None:
    dispatch_now()


@jobqueue.job()
def deliver_webhooks() -> None:
    deliver_now()


@jobqueue.periodic(crontab(minute="*"))
def automation_tick() -> None:
    """Every minute: expired leases, the clock triggers (dates, schedules, not opened within)
    and the watched segments that are due, outbox rows a lost wake-up left, workflow steps and
    webhook retries that are due; once an hour, dispatched outbox rows older than
    OUTBOX_KEEP_DAYS go."""
    engine = db.get_engine()
    recover(engine)
    scheduled.run_due(engine, wake=wake)
    segment_watch.run_due(engine, current_settings(), wake=wake)
    dispatch_now(engine)
    if utcnow().minute == 7:
        with db.write(engine) as conn:
            outbox.purge_dispatched(conn, utcnow() - timedelta(days=OUTBOX_KEEP_DAYS))


@jobqueue.job(retries=2, retry_delay=300)
def notify_webhook_disabled(webhook_id: int, url: str, reason: str) -> None:
    """Emails every active administrator that a webhook subscription was switched off."""
    settings = current_settings()
    with db.read(db.get_engine()) as conn:
        admins = [u["email"] for u in access.list_users(conn)
                  if u.get("role") == "Administrator" and u.get("is_active", True)]
    page = f"{settings['server.public_url'].rstrip('/')}/automation/webhooks/{webhook_id}"
    text = (f"The webhook subscription {webhook_id} ({url}) was switched off: {reason}.\n\n"
            f"Its delivery log and the switch to turn it on again: {page}\n")
    staff_notice.send(settings, admins, f"Webhook {webhook_id} was switched off", text)


@jobqueue.job(retries=2, retry_delay=60)
def send_notice(to: list[str], subject: str, text: str) -> None:
    """A workflow's notify node: the email to staff."""
    staff_notice.send(current_settings(), to, subject, text)


staff_notice.set_queue(lambda to, subject, text: send_notice(to, subject, text))


webhook_sender.on_disabled(lambda webhook_id, url, reason: notify_webhook_disabled(
    webhook_id, url, reason))


def recover(engine) -> None:
    """Leases held by runners and webhook senders that died on this host are freed."""
    with db.write(engine) as conn:
        runner.recover(conn)
        webhook_sender.recover(conn)


@jobqueue.job()
def resume_after_restart() -> None:
    recover(db.get_engine())
    dispatch_now()


# huey keeps start-up hooks by name: an unnamed hook here would replace another domain's
# `_consumer_started` (the campaigns' resume after a restart).
@jobqueue.huey.on_startup("automation")
def _automation_consumer_started() -> None:
    if not jobqueue.huey.immediate:
        resume_after_restart()
