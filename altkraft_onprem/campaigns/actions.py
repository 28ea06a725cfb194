"""Lifecycle actions as UI, API and CLI perform them: the change in one transaction, then the
job that acts on it (enqueued only after the change is committed)."""
from __future__ import annotations

from altkraft_onprem import db
from altkraft_onprem.access.models import Actor
from altkraft_onprem.config import current_settings

from . import breakers, jobs, service, splittest, startcheck

ACTIONS = ("start", "schedule", "pause", "resume", "cancel")


def perform(actor: Actor, settings, campaign_id: int, action: str, engine=None) -> str:
    """Runs one lifecycle action; returns the new state (ServiceError/Conflict when refused)."""
    engine = engine or db.get_engine()
    if action == "start":
        startcheck.refuse_blocked(engine, settings, campaign_id)
    with db.write(engine) as conn:
        new_state = {
            "start": lambda: service.start(conn, actor, settings, campaign_id),
            "schedule": lambda: service.schedule(conn, actor, settings, campaign_id),
            "pause": lambda: service.pause(conn, actor, campaign_id),
            "resume": lambda: service.resume(conn, actor, campaign_id),
            "cancel": lambda: service.cancel(conn, actor, campaign_id),
        }[action]()
        schedule_at = service.get_campaign(conn, campaign_id)["schedule_at"]
    if new_state == "running":
        jobs.kick(campaign_id, engine)
    elif new_state == "scheduled":
        jobs.start_scheduled.schedule((campaign_id,), eta=schedule_at)
    return new_state


def after_create(actor: Actor, campaign_id: int, *, start_now: bool, scheduled: bool,
                 settings=None, engine=None) -> str | None:
    """"Start right now" wins over a schedule; a schedule alone schedules the campaign."""
    settings = settings or current_settings()
    if start_now:
        return perform(actor, settings, campaign_id, "start", engine)
    if scheduled:
        return perform(actor, settings, campaign_id, "schedule", engine)
    return None


def choose_winner(actor: Actor, campaign_id: int, variant: int | None = None, engine=None) -> int:
    """A person picks the split test's winner now: the named variant, or the best by the
    test's metric so far; the held rows then go out with it. Returns the winning variant."""
    engine = engine or db.get_engine()
    with db.write(engine) as conn:
        winner = splittest.decide(conn, actor, campaign_id, variant)
        running = service.state(conn, campaign_id) == "running"
    if running:
        jobs.send_campaign(campaign_id)
    return winner


def resume_provider(actor: Actor, provider: str, engine=None) -> list[int]:
    """A person closes a provider's circuit breaker: its waiting rows are due at once and the
    running campaigns that have some are woken. Returns those campaigns."""
    engine = engine or db.get_engine()
    with db.write(engine) as conn:
        woken = breakers.close(conn, actor, provider)
        running = [c for c in woken if service.state(conn, c) == "running"]
    for campaign_id in running:
        jobs.send_campaign(campaign_id)
    return running
