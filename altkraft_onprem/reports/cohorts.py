"""Cohort analysis: subscribers grouped by the month (or week) they joined; for each following
period, the share of the cohort that opened (or clicked) at least once, human events only.

Cohort = subscribers.created_at bucket (not deleted), optionally only members of a list and/or
of one source. Period 0 is the joining period itself. Both databases compute the bucket labels
(db.periods). The counts come from the roll-ups that every event flush keeps
(tracking/rollup.py), never from the raw events: without a list from the per-cohort counts,
with a list from each member's active periods (membership is not in the per-cohort counts).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, literal_column, select

from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.db import periods
from altkraft_onprem.tracking.models import (
    ACTIVE_BITS,
    CLICK,
    OPEN,
    engagement_activity,
    engagement_cohorts,
)

s = subscribers.c
METRICS = {"open": OPEN, "click": CLICK}


def _filtered(query, source: str | None, since: datetime | None, until: datetime | None):
    query = query.where(s.deleted_at.is_(None))
    if source:
        query = query.where(s.source == source)
    if since is not None:
        query = query.where(s.created_at >= since)
    if until is not None:
        query = query.where(s.created_at < until)
    return query


def cohorts(conn: Connection, *, period: str = "month", metric: str = "open", list_id: int | None = None,
            source: str | None = None, since: datetime | None = None, until: datetime | None = None,
            periods_shown: int = 12) -> dict[str, Any]:
    """{"period", "metric", "columns": [0..n-1], "rows": [{"cohort", "size", "counts", "shares"}]}."""
    if period not in ("month", "week"):
        raise ValueError("period must be month or week")
    if metric not in METRICS:
        raise ValueError("metric must be open or click")
    if not 1 <= periods_shown <= ACTIVE_BITS:
        raise ValueError(f"periods_shown must be 1..{ACTIVE_BITS}")
    joined = periods.bucket(s.created_at, period, conn.dialect.name).label("cohort")
    if list_id is None:
        sizes = dict(conn.execute(_filtered(select(joined, func.count()), source, since, until)
                                  .group_by(joined)).all())
        counts = _rolled_up(conn, period, metric, source, sizes, periods_shown)
    else:
        sizes, counts = _list_members(conn, joined, period, metric, list_id, source, since, until, periods_shown)
    rows = []
    for label in sorted(sizes):
        size = sizes[label]
        row_counts = counts.get(label, [0] * periods_shown)
        rows.append({"cohort": label, "size": size, "counts": row_counts,
                     "shares": [round(100.0 * c / size, 1) if size else 0.0 for c in row_counts]})
    return {"period": period, "metric": metric, "list_id": list_id, "source": source,
            "columns": list(range(periods_shown)), "rows": rows}


def _rolled_up(conn: Connection, period: str, metric: str, source: str | None, sizes: dict,
               periods_shown: int) -> dict[str, list[int]]:
    """Per cohort, the people active in each period after joining, from the per-cohort roll-up."""
    c = engagement_cohorts.c
    query = select(c.cohort, c.bucket, func.sum(c.count)).where(
        c.period == period, c.metric == METRICS[metric], c.cohort.in_(list(sizes)))
    if source:
        query = query.where(c.source == source)
    counts: dict[str, list[int]] = {}
    for label, active, count in conn.execute(query.group_by(c.cohort, c.bucket)):
        offset = periods.index(label, active, period)
        if 0 <= offset < periods_shown:
            counts.setdefault(label, [0] * periods_shown)[offset] = int(count)
    return counts


def _list_members(conn: Connection, joined, period: str, metric: str, list_id: int, source: str | None,
                  since: datetime | None, until: datetime | None, periods_shown: int):
    """Cohort sizes and per-period active counts of one list's members, in one pass over them:
    each member's row of engagement_activity (a bit per active period) is summed bit by bit."""
    a = engagement_activity.c
    members = subscriber_lists.join(subscribers, s.id == subscriber_lists.c.subscriber_id).outerjoin(
        engagement_activity, and_(a.subscriber_id == s.id, a.period == period, a.metric == METRICS[metric]))
    bits = [func.coalesce(func.sum(a.active.op(">>")(literal_column(str(k))).op("&")(literal_column("1"))), 0)
            for k in range(periods_shown)]
    query = _filtered(select(joined, func.count(), *bits).select_from(members)
                      .where(subscriber_lists.c.list_id == list_id), source, since, until)
    sizes, counts = {}, {}
    for label, size, *active in conn.execute(query.group_by(joined)):
        sizes[label] = size
        counts[label] = [int(n) for n in active]
    return sizes, counts


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

