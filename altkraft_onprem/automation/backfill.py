"""Backfill when a workflow becomes active (entry.backfill): nobody ("none", the default),
everyone who matches its trigger now ("matching"), or those who would have entered in the last
N days ({"days": N}).

"Matching now" is the trigger's state: the list membership of list_joined / optin_confirmed /
unsubscribed, the segment of segment_entered, the field value `to` of field_changed, a human
open / read / click (of the campaign) for the engagement triggers, and everyone for
subscriber_created, manual, schedule and restored. "The last N days" replays the record: when
people joined, confirmed or unsubscribed, were created, engaged, posted the custom event, and
what the clock triggers (dates, schedules, not opened within) would have found in that window.
Validation refuses the other combinations at publish (definition.backfill_possible). The
entry filter and the re-entry policy apply as to anyone; each person enters once per version
(the entry key names it).
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow

from . import enrollment as enrollments
from . import scheduled
from .models import received_events

CHUNK = 5000
LIST_STATES = {"list_joined": (("confirmed", "unconfirmed"), "created_at"),
               "optin_confirmed": (("confirmed",), "confirmed_at"),
               "unsubscribed": (("unsubscribed",), "unsubscribed_at")}
ACTIVITY = {"email_opened": "open", "email_read": "read", "email_clicked": "click"}


def run(conn: Connection, workflow: dict, version: dict, now: datetime | None = None,
        wake=None) -> int:
    """Enrolls the backfill of a workflow that just became active; returns how many."""
    now = now or utcnow()
    backfill = version["definition"].get("entry", {}).get("backfill", "none")
    if backfill == "none":
        return 0
    entered = 0
    for chunk in _entries(conn, workflow, version, backfill, now):
        entered += len(enrollments.enter_many(conn, workflow, version, chunk, now=now, wake=wake))
    return entered


def _entries(conn: Connection, workflow: dict, version: dict, backfill, now: datetime) -> Iterator[
        list[enrollments.Entry]]:
    trigger = version["definition"]["trigger"]
    kind = trigger["type"]
    days = None if backfill == "matching" else backfill["days"]
    if days is not None and kind in scheduled.FINDERS:
        yield from scheduled.FINDERS[kind](conn, workflow, version, trigger,
                                           now - timedelta(days=days), now)
        return
    if kind == "event":
        yield from _events(conn, version, trigger, now - timedelta(days=days))
        return
    event = {"backfill": backfill}
    key = f"backfill:{version['id']}"
    for ids in enrollments.people(conn, _who(conn, trigger, days, now), CHUNK):
        yield [enrollments.Entry(i, f"{key}:{i}", event) for i in ids]


def _who(conn: Connection, trigger: dict, days: int | None, now: datetime) -> list:
    """The WHERE over subscribers of those the trigger matches now (days None) or would have
    brought in over the last `days`."""
    kind = trigger["type"]
    where = [subscribers.c.deleted_at.is_(None)]
    since = now - timedelta(days=days) if days is not None else None
    if kind in LIST_STATES:
        statuses, stamp = LIST_STATES[kind]
        where.append(subscribers.c.id.in_(audience.list_members(
            trigger.get("list_id"), statuses, stamp, since)))
    elif kind == "segment_entered":
        where.append(segment_service.segment_expr(conn, trigger["segment_id"]))
    elif kind == "field_changed":
        where.append(segment_service.matching(conn, {"op": "and", "rules": [
            {"field": trigger["field"], "operator": "eq", "value": trigger["to"]}]}))
    elif kind in ACTIVITY:
        rule = {"activity": ACTIVITY[kind], "operator": "did"}
        if trigger.get("campaign_id") is not None:
            rule["campaign"] = trigger["campaign_id"]
        if days is not None:
            rule["days"] = days
        where.append(segment_service.matching(conn, {"op": "and", "rules": [rule]}))
    elif kind == "subscriber_created" and since is not None:
        where.append(subscribers.c.created_at >= since)
        if trigger.get("source") in ("form", "import", "api"):
            where.append(subscribers.c.source.startswith(trigger["source"], autoescape=True))
    return where


def _events(conn: Connection, version: dict, trigger: dict, since: datetime) -> Iterator[
        list[enrollments.Entry]]:
    """Custom events of the trigger's name since then, oldest first (each person's first one
    enrolls; the rest find them inside)."""
    rows = conn.execute(select(received_events.c.id, received_events.c.subscriber_id,
                               received_events.c.properties).where(
        received_events.c.name == trigger["name"], received_events.c.occurred_at >= since)
        .order_by(received_events.c.occurred_at, received_events.c.id))
    found = [enrollments.Entry(subscriber_id, f"backfill:{version['id']}:e{event_id}",
                               {"name": trigger["name"], **(properties or {})})
             for event_id, subscriber_id, properties in rows]
    yield from db.chunked(found, CHUNK)
