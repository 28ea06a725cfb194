"""Triggers the clock drives: a date field ± offset at a local time (birthdays: every year, by
month and day), a recurring schedule, and "not opened / not clicked within N" of a campaign's
email (human events only).

Each active workflow with such a trigger has a mark: the moment up to which it has looked. The
minute tick enrolls whoever fell due in (mark, now] and moves the mark in the transaction of
the last of them. Every entry key names its occurrence (the person and the day, the schedule's
moment, the message), so a window looked at twice enrolls no one twice. The mark is set to the
moment a workflow becomes active: nothing that fell due before fires (a birthday last week, a
date field set to a past day — Mautic #6062) unless the publisher asks for a backfill.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from sqlalchemy import Connection, Engine, func, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.tracking import lookups as tracking_lookups
from altkraft_onprem.tracking.models import CLICK, OPEN

from . import enrollment as enrollments
from . import timing, triggers
from .workflow_models import trigger_marks

log = logging.getLogger("altkraft.automation")
CLOCK_TRIGGERS = ("date_field", "schedule", "not_opened", "not_clicked")
CHUNK = 5000
# Every zone's offset from UTC (and every DST jump) is a multiple of 15 minutes: a local HH:MM
# falls on a UTC minute with the same remainder modulo 15.
ZONE_STEP_MINUTES = 15


def mark_activation(conn: Connection, workflow_id: int, trigger_type: str, was_active: bool,
                    now: datetime | None = None) -> None:
    """At publish: a workflow that becomes active looks forward from now; one that was active
    already keeps looking from where it was."""
    if trigger_type not in CLOCK_TRIGGERS:
        return
    now = now or utcnow()
    found = conn.execute(select(trigger_marks.c.checked_until).where(
        trigger_marks.c.workflow_id == workflow_id)).first()
    if found is None:
        conn.execute(trigger_marks.insert().values(workflow_id=workflow_id, checked_until=now))
    elif not was_active:
        conn.execute(update(trigger_marks).where(trigger_marks.c.workflow_id == workflow_id)
                     .values(checked_until=now))


def run_due(engine: Engine, now: datetime | None = None, wake=None) -> int:
    """Every active workflow with a clock trigger: enrolls what fell due; returns how many."""
    now = now or utcnow()
    with db.read(engine) as conn:
        running = [(w, v) for w, v in triggers.active(conn)
                   if v["definition"]["trigger"]["type"] in CLOCK_TRIGGERS]
    entered = 0
    for workflow, version in running:
        try:
            entered += _run_one(engine, workflow, version, now, wake)
        except Exception as exc:  # noqa: BLE001 - one workflow's fault must not stop the others
            if db.is_busy(exc):
                raise
            log.exception("the trigger of workflow %s could not be evaluated", workflow["id"])
    return entered


def _run_one(engine: Engine, workflow: dict, version: dict, now: datetime, wake) -> int:
    with db.read(engine) as conn:
        mark = conn.execute(select(trigger_marks.c.checked_until).where(
            trigger_marks.c.workflow_id == workflow["id"])).scalar()
    if mark is None or mark >= now:
        return 0
    trigger = version["definition"]["trigger"]
    finder = FINDERS[trigger["type"]]
    entered = 0
    with db.read(engine) as reader:     # the people a chunk at a time, each chunk enrolled in
        for chunk in finder(reader, workflow, version, trigger, mark, now):     # its own commit
            with db.write(engine) as conn:
                entered += len(enrollments.enter_many(conn, workflow, version, chunk, now=now,
                                                      wake=wake))
    with db.write(engine) as conn:
        conn.execute(update(trigger_marks).where(
            trigger_marks.c.workflow_id == workflow["id"], trigger_marks.c.checked_until == mark)
            .values(checked_until=now))
    return entered


Finder = Iterator[list[enrollments.Entry]]


def _falls_in(start: datetime, end: datetime, minute: int) -> bool:
    """Whether (start, end] holds a whole UTC minute that a local HH:`minute` can fall on."""
    first = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for step in range(ZONE_STEP_MINUTES):
        moment = first + timedelta(minutes=step)
        if moment > end:
            return False
        if moment.minute % ZONE_STEP_MINUTES == minute % ZONE_STEP_MINUTES:
            return True
    return False


def _days(start: datetime, end: datetime) -> list[date]:
    """Every calendar day some zone is in during (start, end] (zones run from -12 to +14 h)."""
    first, last = (start - timedelta(hours=12)).date(), (end + timedelta(hours=14)).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _yearly(trigger: dict) -> bool:
    return trigger.get("yearly") if trigger.get("yearly") is not None else \
        trigger["field"] == "birth_date"


def _occurrences(day: date, trigger: dict, years: range) -> Iterator[date]:
    """The local days a date field's value falls due on: once (day + offset), or every year
    on its month and day (29 February: the 28th in other years) + offset."""
    offset = timedelta(days=trigger.get("offset_days", 0))
    if not _yearly(trigger):
        yield day + offset
        return
    for year in years:
        try:
            yield day.replace(year=year) + offset
        except ValueError:
            yield date(year, 2, 28) + offset


def date_field(conn: Connection, workflow: dict, version: dict, trigger: dict, start: datetime,
               end: datetime) -> Finder:
    at = timing.clock(trigger.get("time") or "09:00")
    if not _falls_in(start, end, at.minute):
        return
    offset = timedelta(days=trigger.get("offset_days", 0))
    values = {day - offset for day in _days(start, end)}      # the field values that may be due
    text = segment_service.date_text(conn, trigger["field"])
    if _yearly(trigger):
        keys = {v.strftime("%m-%d") for v in values}
        if any(v.month == 2 and v.day == 28 for v in values):
            keys.add("02-29")
        match = func.substr(text, 6, 5).in_(sorted(keys))
    else:
        match = text.in_(sorted(v.isoformat() for v in values))
    fallback = version["definition"].get("timezone", "UTC")
    years = range(start.year - 1, end.year + 2)
    found = []
    for subscriber_id, value, zone in conn.execute(select(
            subscribers.c.id, text, subscribers.c.timezone).where(
            match, subscribers.c.deleted_at.is_(None), subscribers.c.state == "active")):
        tz = timing.zone(zone, fallback)
        for day in _occurrences(date.fromisoformat(value), trigger, years):
            moment = timing.local_to_utc(datetime.combine(day, at), tz)
            if start < moment <= end:
                found.append(enrollments.Entry(
                    subscriber_id, f"date:{workflow['id']}:{day.isoformat()}:{subscriber_id}",
                    {"field": trigger["field"], "value": value, "date": day.isoformat()}))
    yield from db.chunked(found, CHUNK)


def schedule(conn: Connection, workflow: dict, version: dict, trigger: dict, start: datetime,
             end: datetime) -> Finder:
    """The latest moment of the schedule in (start, end] (missed earlier ones are not made
    up): everyone in its segment (or everyone) enters."""
    tz = timing.zone(version["definition"].get("timezone", "UTC"))
    at: time = timing.clock(trigger.get("time") or "09:00")
    weekdays = trigger.get("weekdays") or [1, 2, 3, 4, 5, 6, 7]
    moment = None
    local_end = end.astimezone(tz).date()
    for back in range(8):
        day = local_end - timedelta(days=back)
        candidate = timing.local_to_utc(datetime.combine(day, at), tz)
        if day.isoweekday() in weekdays and start < candidate <= end:
            moment = candidate
            break
    if moment is None:
        return
    where = [subscribers.c.deleted_at.is_(None), subscribers.c.state == "active"]
    if trigger.get("segment_id") is not None:
        where.append(segment_service.segment_expr(conn, trigger["segment_id"]))
    occurrence = moment.isoformat()
    for ids in enrollments.people(conn, where, CHUNK):
        yield [enrollments.Entry(i, f"schedule:{workflow['id']}:{occurrence}:{i}",
                                 {"occurrence": occurrence}) for i in ids]


def no_engagement(conn: Connection, workflow: dict, version: dict, trigger: dict,
                  start: datetime, end: datetime) -> Finder:
    """Messages of the campaign whose `within` ended in (start, end] without a human open
    (not_opened) or click (not_clicked)."""
    within = timing.duration(trigger["within"])
    kind = OPEN if trigger["type"] == "not_opened" else CLICK
    campaign_id = trigger["campaign_id"]
    found = [enrollments.Entry(
        subscriber_id, f"{trigger['type']}:{workflow['id']}:{campaign_id}:{subscriber_id}:{occurrence}",
        {"campaign_id": campaign_id, "sent_at": sent_at.isoformat()})
        for subscriber_id, occurrence, sent_at in tracking_lookups.unengaged(
            conn, campaign_id, kind, within, start - within, end - within)]
    yield from db.chunked(found, CHUNK)


FINDERS = {"date_field": date_field, "schedule": schedule, "not_opened": no_engagement,
           "not_clicked": no_engagement}
