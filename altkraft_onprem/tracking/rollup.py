"""The cohort roll-up: kept up to date by every event flush so that the cohort report reads a
small table instead of every event.

engagement_seen remembers (subscriber, metric, week|month, bucket) already counted; only rows
new to it add one to engagement_cohorts (period, metric, cohort = the subscriber's join bucket,
activity bucket, source). Human opens and clicks only. `rebuild` computes both tables from the
events (after bulk loads, or if they are ever in doubt).
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, delete, func, literal, select

from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.reports import periods

from .bulk import insert_new, rows_with, upsert
from .models import CLICK, HUMAN, OPEN, engagement_cohorts, engagement_seen, tracking_events

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
    for sid, metric, period, bucket in fresh:
        if sid in joined:
            created, source = joined[sid]
            counts[(period, metric, periods.label(created, period), bucket, source)] += 1
    items = [{"period": p, "metric": m, "cohort": c, "bucket": b, "source": s, "count": n}
             for (p, m, c, b, s), n in sorted(counts.items())]
    if not items:
        return
    stmt = upsert(conn, engagement_cohorts)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["period", "metric", "cohort", "bucket", "source"],
        set_={"count": engagement_cohorts.c.count + stmt.excluded.count}), items)


def rebuild(conn: Connection) -> None:
    """Recompute both roll-up tables from all events (bulk loads, repair)."""
    conn.execute(delete(engagement_cohorts))
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
