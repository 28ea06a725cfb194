"""Background work of campaigns: the send run, scheduled starts, picking up after a restart."""
from __future__ import annotations

import logging
import time

from huey import crontab

from altkraft_onprem import db, extensions, jobqueue
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, ServiceError
from altkraft_onprem.holders import owner_name

from . import breakers, journal, ledger, runs, splittest, startcheck
from . import service as campaigns

log = logging.getLogger("altkraft.campaigns")
# Retries due this soon are waited for inside the run instead of a new job.
WAIT_INLINE_SECONDS = 5.0


def run_campaign(settings, engine, campaign_id: int, processes: int | None = None) -> list:
    """Sends a running campaign until nothing is due; pauses it when no relay answers,
    finishes it when every row is final, schedules itself again for later retries. The
    sender processes are sending's (plugged in at the composition root). Ends at once when
    another run holds the campaign (campaigns/runs.py), wherever that run is."""
    owner, lease = owner_name(), settings["delivery.lease_seconds"]
    outcomes: list = []
    while True:
        with db.write(engine) as conn:
            if not runs.take(conn, campaign_id, owner, lease):
                log.info("campaign %s is being sent by another run", campaign_id)
                return outcomes
        try:
            outcomes.extend(_send_until_done(settings, engine, campaign_id, processes, lease))
        finally:
            with db.write(engine) as conn:
                runs.release(conn, campaign_id, owner)
        # A row queued after this run last looked (a workflow step, a transactional request)
        # whose wake-up found the lease still held would wait for the minute tick: one more
        # look now that the lease is free.
        with db.read(engine) as conn:
            due = ledger.next_due(conn, campaign_id) if campaigns.state(
                conn, campaign_id) == "running" else None
        if due is None or due > utcnow():
            return outcomes


def _send_until_done(settings, engine, campaign_id: int, processes: int | None,
                     lease: float) -> list:
    outcomes = []
    while True:
        replay_journals(settings, engine)
        with db.write(engine) as conn:
            runs.extend(conn, campaign_id, lease)
            ledger.recover(conn, campaign_id)
            if campaigns.state(conn, campaign_id) != "running":
                return outcomes
            campaigns.build_ledger(conn, campaign_id, settings)
            # What a warm-up's quota lets go today (deliverability answers; nothing without it).
            extensions.CAMPAIGN_RELEASE.collect(conn, settings, campaign_id)
            campaigns.defer_quiet(conn, campaign_id)
            breakers.defer_held(conn, campaign_id)
        results = extensions.CAMPAIGN_SENDERS.ask(settings, engine, campaign_id, processes)
        outcomes.extend(results)
        paused = next((o.paused for o in results if o.paused), None)
        replay_journals(settings, engine)
        with db.write(engine) as conn:
            ledger.recover(conn, campaign_id)
            if campaigns.state(conn, campaign_id) == "cancelled":
                ledger.cancel_rows(conn, campaign_id)      # rows released after the cancel
                return outcomes
            if paused:
                campaigns.pause_by_system(conn, campaign_id, paused)
                log.warning("campaign %s paused: %s", campaign_id, paused)
                return outcomes
            if campaigns.finish_if_done(conn, campaign_id):
                return outcomes
            campaigns.defer_quiet(conn, campaign_id)
            breakers.defer_held(conn, campaign_id)
            due = ledger.next_due(conn, campaign_id)
            if due is None and splittest.decide_if_due(conn, campaign_id):
                due = utcnow()          # the split test's winner goes to the held rows now
        if due is None:
            return outcomes
        wait = (due - utcnow()).total_seconds()
        if wait > WAIT_INLINE_SECONDS:
            send_campaign.schedule((campaign_id,), delay=wait)
            return outcomes
        time.sleep(max(wait, 0.05))


def replay_journals(settings, engine) -> None:
    """Records of senders that died on this host go into the ledger; `ledger.recover` must
    come after it, or a row whose reply was journaled would count as in doubt."""
    journal.replay(engine, journal.directory(settings))


@jobqueue.job()
def send_campaign(campaign_id: int) -> None:
    run_campaign(current_settings(), db.get_engine(), campaign_id)


# The transactional API queues a row per request: a job per request would be a queue write
# each.
_carrier_waker = jobqueue.Waker(send_campaign, interval=0.2)


def wake(campaign_id: int) -> None:
    """Queues a campaign's send run after a commit, at most every 0.2 s per process and
    campaign (jobqueue.Waker)."""
    if jobqueue.huey.immediate:          # tests: the run happens here and now
        send_campaign(campaign_id)
        return
    _carrier_waker(campaign_id)


def kick(campaign_id: int, engine=None) -> None:
    """Enqueue the send run (after the transaction that started the campaign committed)."""
    send_campaign(campaign_id)
    schedule_decision(campaign_id, engine)


def schedule_decision(campaign_id: int, engine=None) -> None:
    """A split test's automatic winner, queued for its time (the minute tick is the safety
    net, and a send run that ends with only held rows left decides when it is time)."""
    with db.read(engine or db.get_engine()) as conn:
        test = splittest.get(conn, campaign_id)
    if test is not None and test["state"] == "testing" and test["decide_at"] is not None:
        decide_split_test.schedule((campaign_id,), eta=test["decide_at"])


@jobqueue.job()
def decide_split_test(campaign_id: int) -> None:
    decide_due()


def decide_due() -> list[int]:
    """Chooses the winners whose time has come; each campaign then sends on (if running)."""
    engine = db.get_engine()
    with db.read(engine) as conn:
        candidates = splittest.due(conn)
    decided = []
    for campaign_id in candidates:
        try:
            with db.write(engine) as conn:
                if splittest.decide_if_due(conn, campaign_id):
                    decided.append(campaign_id)
        except ServiceError as exc:       # decided by a person meanwhile, cancelled, …
            log.info("split test of campaign %s not decided: %s", campaign_id, exc.message)
    for campaign_id in decided:
        log.info("split test of campaign %s decided", campaign_id)
        send_campaign(campaign_id)
    return decided


@jobqueue.periodic(crontab(minute="*"))
def campaigns_tick() -> None:
    """Every minute: start campaigns whose time has come and pick up running campaigns whose
    sender died (a restart, a killed worker) — the ledger makes a second run harmless;
    choose split-test winners whose time has come."""
    start_due()
    decide_due()


def start_due() -> list[int]:
    engine = db.get_engine()
    settings = current_settings()
    replay_journals(settings, engine)
    with db.read(engine) as conn:
        due = campaigns.due_scheduled(conn)
    started = [campaign_id for campaign_id in due
               if _start_scheduled_one(settings, engine, system_actor("scheduler"), campaign_id)]
    with db.write(engine) as conn:
        orphaned = []
        for campaign_id in campaigns.running(conn):
            ledger.recover(conn, campaign_id)          # leases of senders that died
            if not ledger.has_live_lease(conn, campaign_id) and _due_now(conn, campaign_id):
                orphaned.append(campaign_id)
    for campaign_id in {*started, *orphaned}:
        send_campaign(campaign_id)
    for campaign_id in started:
        schedule_decision(campaign_id, engine)
    return started


def _start_scheduled_one(settings, engine, actor, campaign_id: int) -> bool:
    """Starts one due campaign in its own transaction. One that cannot start (its message
    cannot be rendered for its recipients, no relay, …) goes back to draft with the reason
    on its page; it stops no other.

    Lateness is judged before the pre-send checks: whether a campaign that missed its time
    should go out at all is the first thing to decide (its page offers Start now, and that
    start runs the checks and says what blocks it); held as blocked instead, its lateness
    would be forgotten and a start after the block was mended would send it late silently."""
    try:
        with db.write(engine) as conn:
            if campaigns.hold_if_late(conn, actor, settings, campaign_id):
                log.warning("scheduled campaign %s held: later than campaigns.max_lateness",
                            campaign_id)
                return False
        startcheck.refuse_blocked(engine, settings, campaign_id)
        with db.write(engine) as conn:
            campaigns.start(conn, actor, settings, campaign_id)
        return True
    except Conflict:
        return False                    # started, paused or cancelled meanwhile
    except ServiceError as exc:
        reason = exc.message
    log.warning("scheduled campaign %s not started: %s", campaign_id, reason)
    try:
        with db.write(engine) as conn:
            campaigns.pause(conn, actor, campaign_id, reason=f"Not started: {reason}")
    except Conflict:
        pass                            # changed meanwhile: nothing to put back
    return False


def _due_now(conn, campaign_id: int) -> bool:
    """Whether a send run would find something to send now. Not: a split test waiting for
    its winner (held rows), rows of a local-time campaign's later zones, retries waiting —
    the run that left them queued its own next run for their time."""
    due = ledger.next_due(conn, campaign_id)
    return due is not None and due <= utcnow()


@jobqueue.job()
def start_scheduled(campaign_id: int) -> None:
    """Queued with eta = schedule_at when a campaign is scheduled (huey keeps it across
    restarts); the minute tick is the safety net."""
    start_due()


@jobqueue.job()
def resume_after_restart() -> None:
    """A consumer (re)started: running campaigns whose sender died continue at once instead
    of at the next minute tick."""
    start_due()


@jobqueue.huey.on_startup()
def _consumer_started() -> None:
    if not jobqueue.huey.immediate:
        resume_after_restart()
