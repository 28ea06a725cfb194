"""The cohort roll-up: kept up to date by every event flush so that the cohort report reads a
small table instead of every event.

engagement_seen remembers (subscriber, metric, week|month, bucket) already counted; only rows
new to it add one to engagement_cohorts (period, metric, cohort = the subscriber's join bucket,
activity bucket, source) and set the period's bit in engagement_activity (per person: which
periods after joining were active; what the report filtered by a list reads). Human opens and
clicks only. `rebuild` computes all three tables from the events (after bulk loads, or if they
are ever in doubt).
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import BigInteger, Connection, cast, delete, func, literal, select

from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db import periods

from .bulk import insert_new, rows_with, upsert
from .models import (
    ACTIVE_BITS,
    CLICK,
    HUMAN,
    OPEN,
    engagement_activity,
    engagement_cohorts,
    engagement_seen,
    tracking_events,
)

PERIODS = ("week", "month")


def record(conn: Connection, rows: list[dict]) -> None:
    """Counts the human opens/clicks of a flushed batch into the roll-up."""
    keys = {(r["subscriber_id"], r["kind"], period, periods.label(r["at"], period))
            for r in rows if r["kind"] in (OPEN, CLICK) and not r["machine"] for period in PERIODS}
    if not keys:
        return
    fresh = insert_new(conn, engagement_seen, ["subscriber_id", "metric", "period", "bucket"], sorted(keys))
    if not fresh:
        return
    joined = {sid: (created, source or "") for sid, created, source in rows_with(
        conn, select(subscribers.c.id, subscribers.c.created_at, subscribers.c.source), subscribers.c.id,
        {f[0] for f in fresh})}
    counts: Counter = Counter()
    active: dict[tuple, int] = {}
    for sid, metric, period, bucket in fresh:
        if sid in joined:
            created, source = joined[sid]
            cohort = periods.label(created, period)
            counts[(period, metric, cohort, bucket, source)] += 1
            offset = periods.index(cohort, bucket, period)
            if 0 <= offset < ACTIVE_BITS:
                active[(sid, period, metric)] = active.get((sid, period, metric), 0) | 1 << offset
    items = [{"period": p, "metric": m, "cohort": c, "bucket": b, "source": s, "count": n}
             for (p, m, c, b, s), n in sorted(counts.items())]
    if not items:
        return
    stmt = upsert(conn, engagement_cohorts)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["period", "metric", "cohort", "bucket", "source"],
        set_={"count": engagement_cohorts.c.count + stmt.excluded.count}), items)
    if active:
        stmt = upsert(conn, engagement_activity)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["subscriber_id", "period", "metric"],
            set_={"active": engagement_activity.c.active.op("|")(stmt.excluded.active)}),
            [{"subscriber_id": sid, "period": p, "metric": m, "active": bits}
             for (sid, p, m), bits in sorted(active.items())])


def rebuild(conn: Connection) -> None:
    """Recompute both roll-up tables from all events (bulk loads, repair)."""
    conn.execute(delete(engagement_cohorts))
    conn.execute(delete(engagement_activity))
    conn.execute(delete(engagement_seen))
    ev, s = tracking_events.c, subscribers.c
    dialect = conn.dialect.name
    for period in PERIODS:
        bucket = periods.bucket(ev.at, period, dialect)
        conn.execute(engagement_seen.insert().from_select(
            ["subscriber_id", "metric", "period", "bucket"],
            select(ev.subscriber_id, ev.kind, literal(period), bucket)
            .where(ev.kind.in_((OPEN, CLICK)), HUMAN).distinct()))
        seen = engagement_seen.c
        cohort = periods.bucket(s.created_at, period, dialect)
        conn.execute(engagement_cohorts.insert().from_select(
            ["period", "metric", "cohort", "bucket", "source", "count"],
            select(literal(period), seen.metric, cohort, seen.bucket, s.source, func.count())
            .select_from(engagement_seen.join(subscribers, s.id == seen.subscriber_id))
            .where(seen.period == period)
            .group_by(seen.metric, cohort, seen.bucket, s.source)))
        # the buckets of one person, period kind and metric are distinct, so are their bits:
        # their sum is their OR (which SQLite has no aggregate for)
        offset = periods.offset(cohort, seen.bucket, period, dialect)
        conn.execute(engagement_activity.insert().from_select(
            ["subscriber_id", "period", "metric", "active"],
            select(seen.subscriber_id, literal(period), seen.metric,
                   cast(func.sum(cast(literal(1), BigInteger).op("<<")(offset)), BigInteger))
            .select_from(engagement_seen.join(subscribers, s.id == seen.subscriber_id))
            .where(seen.period == period, offset >= 0, offset < ACTIVE_BITS)
            .group_by(seen.subscriber_id, seen.metric)))
