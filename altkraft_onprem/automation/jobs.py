"""Background work of automation: dispatching the outbox, sending webhooks, the minute tick.

The queue only wakes these jobs; what they act on is in the database (outbox rows,
deliveries), so a lost or doubled wake-up changes nothing but latency, and the minute tick
(and a consumer's start) picks up whatever a crash left behind.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from huey import crontab

from altkraft_onprem import db, jobqueue
from altkraft_onprem.access import service as access
from altkraft_onprem.campaigns.ledger import owner_name
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.outbound import DeliveryError, send_single

from . import outbox, webhook_sender, webhooks

log = logging.getLogger("altkraft.automation")
# Dispatched outbox rows are kept this long (for looking into what happened), then purged.
OUTBOX_KEEP_DAYS = 7
FAN_OUTS: list = [webhooks.fan_out]


def wake() -> None:
    """After a commit that wrote outbox rows: dispatch them soon."""
    try:
        dispatch_outbox()
    except Exception:  # noqa: BLE001 - the minute tick dispatches what a lost wake-up left
        log.exception("could not queue the outbox dispatcher")


def dispatch_now(engine=None) -> int:
    """Dispatches every pending outbox row, then sends the webhooks that are due."""
    engine = engine or db.get_engine()
    done = outbox.dispatch(engine, FAN_OUTS)
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
    """Every minute: outbox rows a lost wake-up left, webhook retries that are due, expired
    leases; once an hour, dispatched outbox rows older than OUTBOX_KEEP_DAYS go."""
    engine = db.get_engine()
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
    sender = settings["audience.from_email"] or \
        f"noreply@{urlsplit(settings['server.public_url']).hostname}"
    page = f"{settings['server.public_url'].rstrip('/')}/automation/webhooks/{webhook_id}"
    text = (f"The webhook subscription {webhook_id} ({url}) was switched off: {reason}.\n\n"
            f"Its delivery log and the switch to turn it on again: {page}\n")
    for email in admins:
        try:
            send_single(settings, to_email=email, from_email=sender, from_name="ALTKRAFT",
                        subject=f"Webhook {webhook_id} was switched off", html="", text=text)
        except DeliveryError as exc:
            log.warning("could not tell %s about webhook %s: %s", email, webhook_id, exc)


webhook_sender.on_disabled(lambda webhook_id, url, reason: notify_webhook_disabled(
    webhook_id, url, reason))


@jobqueue.huey.on_startup()
def _consumer_started() -> None:
    if not jobqueue.huey.immediate:
        dispatch_outbox()
