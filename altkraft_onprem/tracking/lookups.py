"""What tracking answers when a lower domain asks (extensions.py; registered in reactions.py):
a person's opens and clicks for their timeline, the engagement condition of segments, and a
split test's openers and clickers per variant."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, case, func, not_, select, true

from altkraft_onprem import db
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow

from .models import CLICK, HUMAN, OPEN, campaign_uniques, tracking_events

_TIMELINE_KINDS = {"open": "opened", "click": "clicked", "read": "read"}
# The roll-up's metrics of people counted by a human event (campaign_rollup.py).
HUMAN_OPENERS, HUMAN_CLICKERS = OPEN + "_h", CLICK + "_h"


def events_timeline(conn: Connection, subscriber_id: int, limit: int) -> list[dict]:
    """extensions.PERSON_TIMELINE: a person's tracking events, newest first."""
    query = select(tracking_events.c.at, tracking_events.c.kind, tracking_events.c.campaign_id,
                   tracking_events.c.link_index, tracking_events.c.machine,
                   tracking_events.c.reason).where(
        tracking_events.c.subscriber_id == subscriber_id).order_by(
        tracking_events.c.at.desc()).limit(limit)
    return [{"at": r.at, "kind": _TIMELINE_KINDS.get(r.kind, r.kind),
             "details": {"campaign_id": r.campaign_id, "link_index": r.link_index,
                         "machine": r.reason if r.machine else None}}
            for r in conn.execute(query)]


def activity_condition(rule: dict, subscriber_id):
    """extensions.SEGMENT_ACTIVITY: did (not) open/click [a campaign] [in the last N days]."""
    events = select(tracking_events.c.id).where(
        tracking_events.c.subscriber_id == subscriber_id,
        tracking_events.c.kind == rule["activity"], tracking_events.c.machine.is_(False))
    if "campaign" in rule:
        events = events.where(tracking_events.c.campaign_id == rule["campaign"])
    if "days" in rule:
        events = events.where(tracking_events.c.at >= utcnow() - timedelta(days=rule["days"]))
    return events.exists() if rule["operator"] == "did" else not_(events.exists())


def split_test_engagement(conn: Connection, campaign_id: int) -> dict[int, tuple[int, int]]:
    """extensions.SPLIT_TEST_ENGAGEMENT: unique human openers and clickers per variant, over
    the test group's ledger rows."""
    d, ev = deliveries.c, tracking_events.c
    engaged = conn.execute(
        select(d.variant, ev.kind, func.count(func.distinct(ev.subscriber_id)))
        .select_from(tracking_events.join(deliveries, (d.campaign_id == ev.campaign_id)
                                          & (d.subscriber_id == ev.subscriber_id)))
        .where(ev.campaign_id == campaign_id, ev.kind.in_((OPEN, CLICK)), HUMAN,
               d.test_group == true())
        .group_by(d.variant, ev.kind)).all()
    unique = {(variant, kind): n for variant, kind, n in engaged}
    return {variant: (unique.get((variant, OPEN), 0), unique.get((variant, CLICK), 0))
            for variant in {variant for variant, _ in unique}}


def unengaged(conn: Connection, campaign_id: int, kind: str, within: timedelta,
              sent_after: datetime, sent_until: datetime) -> list[tuple[int, int, datetime]]:
    """(subscriber, occurrence, sent at) of the campaign's messages sent in (after, until]
    whose recipient made no human `kind` event (open or click) within `within` of it: the
    "not opened / not clicked within N" trigger, asked when each message's N has passed."""
    d, ev = deliveries.c, tracking_events.c
    sent = conn.execute(select(d.subscriber_id, d.occurrence, d.done_at).where(
        d.campaign_id == campaign_id, d.state == "sent", d.done_at > sent_after,
        d.done_at <= sent_until)).all()
    first: dict[int, datetime] = {}
    for chunk in db.chunked(sorted({row.subscriber_id for row in sent}), 2000):
        first.update(conn.execute(select(ev.subscriber_id, func.min(ev.at)).where(
            ev.campaign_id == campaign_id, ev.subscriber_id.in_(chunk), ev.kind == kind, HUMAN)
            .group_by(ev.subscriber_id)).all())
    return [(row.subscriber_id, row.occurrence, row.done_at) for row in sent
            if row.subscriber_id not in first or first[row.subscriber_id] > row.done_at + within]



def unique_engaged(conn: Connection, campaign_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{campaign: (unique human openers, unique human clickers)}: a workflow split's figures.
    From the campaign roll-up (campaign_rollup.py, kept by every event flush and relabel): the
    people its report counts as human openers and clickers — an erased person included, as
    there — in a few rows per campaign instead of its events."""
    u = campaign_uniques.c
    found = {(c, metric): int(people or 0) for c, metric, people in conn.execute(
        select(u.campaign_id, u.metric, func.sum(u.people))
        .where(u.campaign_id.in_(campaign_ids), u.metric.in_((HUMAN_OPENERS, HUMAN_CLICKERS)))
        .group_by(u.campaign_id, u.metric))}
    return {c: (found.get((c, HUMAN_OPENERS), 0), found.get((c, HUMAN_CLICKERS), 0))
            for c in campaign_ids}


def recent_engagement(subscriber_ids, since: datetime):
    """SELECT subscriber_id, score: each of these people's human opens since `since`, and
    their human clicks counted twice (warm-ups send to the most engaged first)."""
    ev = tracking_events.c
    score = func.sum(case((ev.kind == CLICK, 2), else_=1)).label("score")
    return select(ev.subscriber_id, score).where(
        ev.subscriber_id.in_(subscriber_ids), ev.kind.in_((OPEN, CLICK)), HUMAN,
        ev.at >= since).group_by(ev.subscriber_id)
