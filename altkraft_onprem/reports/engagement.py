"""Engagement: for a period range and optionally one list, new subscribers vs unsubscribes,
bounces and complaints per day / week / month, and the net growth.

With a list: new = joined the list (subscriber_lists.created_at), unsubscribes = left it
(unsubscribed_at). Without: new = subscribers created, unsubscribes = distinct subscribers who
left any list that period. Bounces and complaints come from the subscriber activity log
(kinds "bounced" / "complained"), when the delivery side records them.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from altkraft_onprem.audience.models import subscriber_activity, subscriber_lists, subscribers
from altkraft_onprem.db import periods
from altkraft_onprem.db.types import utcnow

BOUNCE_KINDS = ("bounced", "bounce")
COMPLAINT_KINDS = ("complained", "complaint")


def default_range(period: str) -> tuple[datetime, datetime]:
    now = utcnow()
    span = {"day": timedelta(days=30), "week": timedelta(weeks=12), "month": timedelta(days=365)}[period]
    return now - span, now


def _counts(conn: Connection, column, where, period: str, distinct=None) -> dict[str, int]:
    b = periods.bucket(column, period, conn.dialect.name).label("b")
    measure = func.count(func.distinct(distinct)) if distinct is not None else func.count()
    return dict(conn.execute(select(b, measure).where(*where).group_by(b)).all())


def engagement(conn: Connection, *, period: str = "day", list_id: int | None = None,
               since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """{"period", "labels", "new", "unsubscribes", "bounces", "complaints", "net", "totals"}."""
    if period not in ("day", "week", "month"):
        raise ValueError("period must be day, week or month")
    if since is None or until is None:
        default_since, default_until = default_range(period)
        since, until = since or default_since, until or default_until
    sl = subscriber_lists.c
    if list_id is not None:
        new = _counts(conn, sl.created_at, [sl.list_id == list_id, sl.created_at >= since,
                                            sl.created_at < until], period)
        gone = _counts(conn, sl.unsubscribed_at, [sl.list_id == list_id, sl.unsubscribed_at >= since,
                                                  sl.unsubscribed_at < until], period)
        scope = [subscriber_activity.c.subscriber_id.in_(
            select(sl.subscriber_id).where(sl.list_id == list_id))]
    else:
        s = subscribers.c
        new = _counts(conn, s.created_at, [s.created_at >= since, s.created_at < until], period)
        gone = _counts(conn, sl.unsubscribed_at, [sl.unsubscribed_at >= since, sl.unsubscribed_at < until],
                       period, distinct=sl.subscriber_id)
        scope = []
    a = subscriber_activity.c
    bounces = _counts(conn, a.at, [a.kind.in_(BOUNCE_KINDS), a.at >= since, a.at < until, *scope], period,
                      distinct=a.subscriber_id)
    complaints = _counts(conn, a.at, [a.kind.in_(COMPLAINT_KINDS), a.at >= since, a.at < until, *scope],
                         period, distinct=a.subscriber_id)
    last = until - timedelta(microseconds=1)          # `until` itself is not in the range
    labels = periods.series(periods.label(since, period), periods.label(last, period), period)
    out: dict[str, Any] = {"period": period, "list_id": list_id, "since": since, "until": until,
                           "labels": labels}
    for name, counts in (("new", new), ("unsubscribes", gone), ("bounces", bounces),
                         ("complaints", complaints)):
        out[name] = [int(counts.get(label, 0)) for label in labels]
    out["net"] = [n - u - b - c for n, u, b, c in zip(out["new"], out["unsubscribes"], out["bounces"],
                                                      out["complaints"], strict=True)]
    out["totals"] = {name: sum(out[name]) for name in ("new", "unsubscribes", "bounces", "complaints", "net")}
    return out


def list_growth(conn: Connection, days: int = 30) -> dict[str, int]:
    """Dashboard tile: new, left and net over the last `days` days, all lists."""
    now = utcnow()
    data = engagement(conn, period="day", since=now - timedelta(days=days), until=now)
    return data["totals"]
