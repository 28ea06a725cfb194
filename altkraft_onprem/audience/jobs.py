"""Audience background jobs: confirmation emails and the daily trash purge."""
from __future__ import annotations

import logging

from huey import crontab

from altkraft_onprem import db
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery.outbound import DeliveryError, send_single
from altkraft_onprem.jobqueue import job, periodic

from . import optin, trash
from .activity import log_activity

log = logging.getLogger(__name__)


@job(retries=2, retry_delay=60)
def send_confirmation(subscriber_id: int, list_id: int) -> str:
    """The double opt-in email for one membership, through the single-message path."""
    settings = current_settings()
    engine = db.get_engine()
    with db.read(engine) as conn:
        message = optin.confirmation_message(conn, settings, subscriber_id, list_id)
    try:
        result = send_single(settings, **message)
    except DeliveryError as exc:
        with db.write(engine) as conn:
            log_activity(conn, subscriber_id, "confirmation_failed", list_id=list_id,
                         reason=str(exc))
        raise
    with db.write(engine) as conn:
        log_activity(conn, subscriber_id, "confirmation_sent", list_id=list_id,
                     message_id=result.message_id)
    return result.message_id


@periodic(crontab(minute="17", hour="3"))
def purge_trash() -> int:
    """Erases subscribers that have been in the trash longer than audience.trash_days."""
    with db.write(db.get_engine()) as conn:
        count = trash.purge(conn, current_settings()["audience.trash_days"])
    if count:
        log.info("trash purge erased %d subscribers", count)
    return count
