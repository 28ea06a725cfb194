"""Deliverability's background work: the daily checks and the email about what got worse."""
from __future__ import annotations

import logging

from huey import crontab

from altkraft_onprem import db, jobqueue
from altkraft_onprem.access.users import emails_with_permission
from altkraft_onprem.automation import staff_notice
from altkraft_onprem.campaigns.jobs import send_campaign
from altkraft_onprem.config import current_settings

from . import checks, warmup

log = logging.getLogger("altkraft.deliverability")


@jobqueue.periodic(crontab(hour="5", minute="17"))
def daily_checks() -> None:
    """Every sending domain's DNS and blocklist checks, and the sending IPs' blocklists."""
    outcome = checks.run(db.get_engine(), current_settings(), notify=notify_regressions)
    log.info("deliverability checks: %d domains, %d IPs, %d regressions",
             len(outcome.domains), len(outcome.ips), len(outcome.regressions))


@jobqueue.job(retries=2, retry_delay=300)
def notify_regressions(items: list[dict]) -> None:
    """One email to everyone who manages the settings: what got worse, and where to look."""
    settings = current_settings()
    with db.read(db.get_engine()) as conn:
        admins = emails_with_permission(conn, "settings:manage")
    page = f"{settings['server.public_url'].rstrip('/')}/deliverability"
    lines = [f"- {i['subject']} {i['check']}: {i['previous']} -> {i['status']}: {i['detail']}"
             for i in items]
    text = ("These deliverability checks got worse:\n\n" + "\n".join(lines)
            + f"\n\nThe records to publish and the latest results: {page}\n")
    subject = (f"Deliverability: {items[0]['subject']} {items[0]['check']} is {items[0]['status']}"
               + (f" (and {len(items) - 1} more)" if len(items) > 1 else ""))
    staff_notice.send(settings, admins, subject, text)


@jobqueue.periodic(crontab(minute="0"))
def release_warmups() -> None:
    """At 00:00 UTC a warm-up's new day begins: what its quotas let go of the held campaign
    rows is queued and those campaigns' send runs woken. Every hour after, the same catches
    up on a midnight the service was down for (and on a warm-up switched off or ended)."""
    for campaign_id in warmup.release_running(db.get_engine(), current_settings()):
        log.info("warm-up released rows of campaign %s", campaign_id)
        send_campaign(campaign_id)
