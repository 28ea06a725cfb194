"""Warm-up of new sending domains and IPs: what the ledger holds back, and what it releases.

A campaign whose mail counts against a warm-up (delivery/warmup.py) has its ledger built with
every row `held` for the warm-up (`campaign_deliveries.hold = 'warmup'`): never claimed. This
module releases them — queued again, for the senders — as far as today's quota of every
warm-up it counts against allows, per mailbox provider, the most engaged recipients first
(human opens and clicks of the last ENGAGEMENT_DAYS days; a split test's test portion before
everyone). What is over today's quota stays held and goes tomorrow (the day is UTC's). A
release happens when a send run passes (campaigns' run asks through
extensions.CAMPAIGN_RELEASE) and by the job at 00:00 UTC and every hour after.

What a release counts is kept per (warm-up, day, provider) in `warmup_usage`, in the
transaction that queues the rows: a count never runs ahead of or behind the ledger, and two
releases at once (a run's and the job's) queue no more than the quota together (Postgres
locks the counters; SQLite has one writer). Rows are counted when released, whether they are
then sent, refused or skipped.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import (
    Connection,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    update,
)

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns import ledger
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.providers import PROVIDER_LABELS, PROVIDER_NAMES, PROVIDERS
from altkraft_onprem.delivery.warmup import Warmup, warmups
from altkraft_onprem.tracking.lookups import recent_engagement

from .models import warmup_usage

HOLD = ledger.WARMUP_HOLD
ENGAGEMENT_DAYS = 90
RELEASE_CHUNK = 1000

def provider_of(domain_column):
    """SQL: the mailbox provider (delivery/providers.py) of a recipient domain column."""
    return case(*[(func.lower(domain_column).in_(domains), literal(name))
                  for name, domains in PROVIDERS.items()], else_=literal("other"))


def _today(now: datetime) -> date:
    return now.astimezone(UTC).date()


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), UTC)


def _held(campaign_id: int):
    d = deliveries.c
    return and_(d.campaign_id == campaign_id, d.state == "held", d.hold == HOLD)


def _waiting(conn: Connection, campaign_id: int, until: datetime) -> dict[str, int]:
    """Held rows per provider that could go today (a local-time row due later waits)."""
    d = deliveries.c
    provider = provider_of(subscribers.c.email_domain)
    rows = conn.execute(select(provider, func.count()).select_from(
        deliveries.join(subscribers, subscribers.c.id == d.subscriber_id)).where(
        _held(campaign_id), or_(d.next_attempt_at.is_(None), d.next_attempt_at < until))
        .group_by(provider)).all()
    return {name: count for name, count in rows}


def _used(conn: Connection, key: str, day: date, provider: str) -> int:
    """The day's count for a warm-up and provider, locked until the transaction ends."""
    values = {"warmup": key, "day": day.isoformat(), "provider": provider, "released": 0}
    conn.execute(db.insert_ignoring_conflicts(conn, warmup_usage).values(**values))
    query = select(warmup_usage.c.released).where(
        warmup_usage.c.warmup == key, warmup_usage.c.day == values["day"],
        warmup_usage.c.provider == provider)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).scalar_one()


def _count(conn: Connection, key: str, day: date, provider: str, released: int) -> None:
    conn.execute(update(warmup_usage).where(
        warmup_usage.c.warmup == key, warmup_usage.c.day == day.isoformat(),
        warmup_usage.c.provider == provider).values(released=warmup_usage.c.released + released))


def _pick(conn: Connection, campaign_id: int, room: dict[str, int], until: datetime,
          now: datetime) -> dict[str, list[int]]:
    """Up to room[provider] held row ids per provider: the test portion first, then the most
    engaged, then in ledger order."""
    d = deliveries.c
    held_people = select(d.subscriber_id).where(_held(campaign_id))
    score = recent_engagement(held_people, now - timedelta(days=ENGAGEMENT_DAYS)).subquery()
    provider = provider_of(subscribers.c.email_domain).label("provider")
    query = (select(d.id, provider)
             .select_from(deliveries.join(subscribers, subscribers.c.id == d.subscriber_id)
                          .outerjoin(score, score.c.subscriber_id == d.subscriber_id))
             .where(_held(campaign_id), or_(d.next_attempt_at.is_(None), d.next_attempt_at < until))
             .order_by(d.test_group.desc(), func.coalesce(score.c.score, 0).desc(), d.id))
    picked: dict[str, list[int]] = {name: [] for name in room}
    left = dict(room)
    for row_id, name in conn.execute(query):
        if left.get(name, 0) > 0:
            picked[name].append(row_id)
            left[name] -= 1
            if not any(left.values()):
                break
    return picked


def release(conn: Connection, settings, campaign_id: int, now: datetime | None = None) -> int:
    """Queues what today's quotas allow of a running campaign's rows held for its warm-ups
    (all of them once no warm-up applies any more); returns how many."""
    now = now or utcnow()
    campaign = campaigns.get_campaign(conn, campaign_id)
    if campaign["state"] != "running" or not ledger.has_hold(conn, campaign_id, HOLD):
        return 0
    day = _today(now)
    found = warmups(settings, campaign["from_email"], day)
    if not found:           # the warm-up is over, or switched off: nothing holds them now
        return ledger.release_hold(conn, campaign_id, HOLD)
    # The day's counters first (locked until the commit): when every quota is used up, as
    # it is at most passes of the send run, nothing more is read.
    free = {provider: min(w.quota - _used(conn, w.key, day, provider) for w in found)
            for provider in PROVIDER_NAMES}
    if all(room <= 0 for room in free.values()):
        return 0
    until = _day_end(day)
    room = {provider: min(free[provider], count)
            for provider, count in _waiting(conn, campaign_id, until).items() if free[provider] > 0}
    if not room:
        return 0
    released = 0
    for provider, ids in _pick(conn, campaign_id, room, until, now).items():
        done = sum(ledger.release_rows(conn, ids[i:i + RELEASE_CHUNK], HOLD)
                   for i in range(0, len(ids), RELEASE_CHUNK))
        for w in found:
            _count(conn, w.key, day, provider, done)
        released += done
    return released


def release_running(engine, settings, now: datetime | None = None) -> list[int]:
    """Every running campaign with rows held for a warm-up, in the order they started (the
    first takes a shared quota first), each in its own transaction; the campaigns that got
    rows back (the caller wakes their send runs)."""
    with db.read(engine) as conn:
        candidates = [c for c in campaigns.running(conn) if ledger.has_hold(conn, c, HOLD)]
        order = {c: campaigns.get_campaign(conn, c)["started_at"] or now for c in candidates}
    woken = []
    for campaign_id in sorted(candidates, key=lambda c: (order[c] or utcnow(), c)):
        with db.write(engine) as conn:
            if release(conn, settings, campaign_id, now):
                woken.append(campaign_id)
    return woken


def summary(conn: Connection, settings, campaign_id: int, now: datetime | None = None) -> dict | None:
    """What a campaign's page and API show while rows are held for a warm-up: the warm-ups
    (day n of m, the day's quota per provider), and per provider what is held, what was
    released today and the day's quota; None when nothing is held for one."""
    now = now or utcnow()
    if not ledger.has_hold(conn, campaign_id, HOLD):
        return None
    campaign = campaigns.get_campaign(conn, campaign_id)
    day = _today(now)
    found = warmups(settings, campaign["from_email"], day)
    d = deliveries.c
    provider = provider_of(subscribers.c.email_domain)
    held = dict(conn.execute(select(provider, func.count()).select_from(
        deliveries.join(subscribers, subscribers.c.id == d.subscriber_id)).where(
        _held(campaign_id)).group_by(provider)).all())
    used = {}
    for w in found:
        for name, released in conn.execute(select(warmup_usage.c.provider, warmup_usage.c.released)
                                           .where(warmup_usage.c.warmup == w.key,
                                                  warmup_usage.c.day == day.isoformat())):
            used[name] = max(used.get(name, 0), released)
    quota = min((w.quota for w in found), default=None)
    providers = [{"provider": name, "label": PROVIDER_LABELS[name], "held": held[name],
                  "released_today": used.get(name, 0), "quota": quota}
                 for name in PROVIDER_NAMES if held.get(name)]
    return {"held": sum(held.values()), "warmups": [_warmup_out(w) for w in found],
            "providers": providers, "next_release": _day_end(day)}


def _warmup_out(w: Warmup) -> dict:
    return {"kind": w.kind, "name": w.name, "day": w.day, "days": w.days, "quota": w.quota}


def held_for_campaign(conn: Connection, campaign_id: int) -> dict | None:
    """extensions.CAMPAIGN_HOLDS."""
    return summary(conn, current_settings(), campaign_id)
