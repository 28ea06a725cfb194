"""Cohort analysis: subscribers grouped by the month (or week) they joined; for each following
period, the share of the cohort that opened (or clicked) at least once, human events only.

Cohort = subscribers.created_at bucket (not deleted), optionally only members of a list and/or
of one source. Period 0 is the joining period itself. Both databases compute the bucket labels
(reports.periods); the period offsets are computed here from the labels. The counts come from
the roll-up that every event flush keeps (tracking/rollup.py), never from the raw events.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.tracking.models import CLICK, OPEN, engagement_cohorts, engagement_seen

from . import periods

s = subscribers.c
METRICS = {"open": OPEN, "click": CLICK}


def _members(list_id: int | None, source: str | None, since: datetime | None, until: datetime | None):
    query = select(s.id, s.created_at).where(s.deleted_at.is_(None))
    if list_id is not None:
        query = query.where(s.id.in_(select(subscriber_lists.c.subscriber_id).where(
            subscriber_lists.c.list_id == list_id)))
    if source:
        query = query.where(s.source == source)
    if since is not None:
        query = query.where(s.created_at >= since)
    if until is not None:
        query = query.where(s.created_at < until)
    return query.subquery("members")


def cohorts(conn: Connection, *, period: str = "month", metric: str = "open", list_id: int | None = None,
            source: str | None = None, since: datetime | None = None, until: datetime | None = None,
            periods_shown: int = 12) -> dict[str, Any]:
    """{"period", "metric", "columns": [0..n-1], "rows": [{"cohort", "size", "counts", "shares"}]}."""
    if period not in ("month", "week"):
        raise ValueError("period must be month or week")
    if metric not in METRICS:
        raise ValueError("metric must be open or click")
    dialect = conn.dialect.name
    members = _members(list_id, source, since, until)
    joined = periods.bucket(members.c.created_at, period, dialect).label("cohort")
    sizes = dict(conn.execute(select(joined, func.count()).group_by(joined)).all())
    if list_id is None:
        activity = _rolled_up(conn, period, metric, source, sizes)
    else:
        # membership of a list is not in the roll-up's counts: count its members' rows of
        # engagement_seen (one per person and active period, read from its primary key)
        seen = engagement_seen.c
        cohort = periods.bucket(members.c.created_at, period, dialect).label("cohort")
        activity = conn.execute(
            select(cohort, seen.bucket, func.count())
            .select_from(engagement_seen.join(members, members.c.id == seen.subscriber_id))
            .where(seen.metric == METRICS[metric], seen.period == period)
            .group_by(cohort, seen.bucket)).all()
    counts: dict[str, dict[int, int]] = {}
    for label, active, count in activity:
        offset = periods.index(label, active, period)
        if 0 <= offset < periods_shown:
            counts.setdefault(label, {})[offset] = count
    rows = []
    for label in sorted(sizes):
        size = sizes[label]
        row_counts = [counts.get(label, {}).get(k, 0) for k in range(periods_shown)]
        rows.append({"cohort": label, "size": size, "counts": row_counts,
                     "shares": [round(100.0 * c / size, 1) if size else 0.0 for c in row_counts]})
    return {"period": period, "metric": metric, "list_id": list_id, "source": source,
            "columns": list(range(periods_shown)), "rows": rows}


def _rolled_up(conn: Connection, period: str, metric: str, source: str | None, sizes: dict) -> list:
    """(cohort, activity bucket, people) from the roll-up kept by tracking (tracking/rollup.py)."""
    c = engagement_cohorts.c
    query = select(c.cohort, c.bucket, func.sum(c.count)).where(
        c.period == period, c.metric == METRICS[metric], c.cohort.in_(list(sizes)))
    if source:
        query = query.where(c.source == source)
    return conn.execute(query.group_by(c.cohort, c.bucket)).all()


def sources(conn: Connection) -> list[str]:
    return [v for (v,) in conn.execute(select(s.source).where(s.source != "").distinct().order_by(s.source).limit(200))]


def segment_conditions(cohort: str, period: str, list_id: int | None, source: str | None) -> dict:
    """Segment conditions selecting one cohort (joined in that period, same filters)."""
    start = periods.parse(cohort, period)
    end = periods.step(start, period)
    rules: list[dict] = [
        # "after" is strict: one microsecond before the start includes the very first one
        {"field": "created_at", "operator": "after",
         "value": (start.replace(tzinfo=UTC) - timedelta(microseconds=1)).isoformat()},
        {"field": "created_at", "operator": "before", "value": end.replace(tzinfo=UTC).isoformat()},
    ]
    if list_id is not None:
        rules.append({"list": list_id, "operator": "member", "status": "any"})
    if source:
        rules.append({"field": "source", "operator": "eq", "value": source})
    return {"op": "and", "rules": rules}

