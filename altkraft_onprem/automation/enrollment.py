"""Enrollments: who enters a workflow (entry filter, re-entry policy, one active at a time),
who leaves, and the figures per node.

`enter_many` inserts under two UNIQUE keys (entry_key, active_key) with ON CONFLICT DO NOTHING,
many people in one statement: whatever replays the cause — an outbox row dispatched again, a
repeated API call with the same idempotency key — finds the row there and enrolls no one.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow

from . import outbox
from .models import received_events
from .workflow_models import enrollments, steps, workflow_versions, workflows

CHUNK = 2000            # ids per IN list and rows per INSERT statement
# Triggers about people on their way out: they enter whatever their state (a complaint or a
# hard bounce has suppressed them in the same transaction). Email still never reaches them.
ANY_STATE_TRIGGERS = {"bounced", "complained", "unsubscribed"}


@dataclass(frozen=True)
class Entry:
    """One person to enroll, the cause (UNIQUE entry key) and the event {{ event.… }} shows."""
    subscriber_id: int
    key: str
    event: dict


def active_key(workflow_id: int, subscriber_id: int) -> str:
    return f"{workflow_id}:{subscriber_id}"


def people(conn: Connection, where: list, size: int = CHUNK, after: int = 0) -> Iterator[list[int]]:
    """Ids of the subscribers matching `where` (those after id `after`), a chunk at a time in
    id order (each chunk one query: a million people are never in memory at once)."""
    last = after
    while True:
        ids = list(conn.execute(select(subscribers.c.id).where(*where, subscribers.c.id > last)
                                .order_by(subscribers.c.id).limit(size)).scalars())
        if not ids:
            return
        yield ids
        last = ids[-1]


def eligible(conn: Connection, workflow: dict, definition: dict, subscriber_ids,
             now: datetime) -> set[int]:
    """Those of these people whom the entry filter and the re-entry policy let in (the
    active key does the rest)."""
    entry = definition.get("entry", {})
    segment = (segment_service.segment_expr(conn, entry["segment_id"])
               if entry.get("segment_id") is not None else None)
    reentry = entry.get("reentry", "once")
    states = [] if definition["trigger"]["type"] in ANY_STATE_TRIGGERS else \
        [subscribers.c.state == "active"]
    allowed: set[int] = set()
    for chunk in db.chunked(sorted(set(subscriber_ids)), CHUNK):
        query = select(subscribers.c.id).where(db.lookup(
            conn, subscribers.c.id, chunk, subscribers.c.deleted_at.is_(None), *states,
            *([] if segment is None else [segment])))
        found = set(conn.execute(query).scalars())
        if reentry != "every_time" and found:
            last = dict(conn.execute(select(enrollments.c.subscriber_id, func.max(
                enrollments.c.started_at)).where(
                db.lookup(conn, enrollments.c.subscriber_id, sorted(found),
                          enrollments.c.workflow_id == workflow["id"], enrollments.c.test.is_(False)))
                .group_by(enrollments.c.subscriber_id)).all())
            if reentry == "once":
                found -= last.keys()
            else:
                found = {i for i in found if i not in last
                         or now - last[i] >= timedelta(days=reentry["after_days"])}
        allowed |= found
    return allowed


def enter_many(conn: Connection, workflow: dict, version: dict, entries: list[Entry], *,
               test: bool = False, now: datetime | None = None, check: bool = True,
               wake=None) -> dict[int, int]:
    """Enrolls these people at the start node; returns {subscriber id: new enrollment id}
    (none for those filtered out, already enrolled for this cause, or already inside)."""
    now = now or utcnow()
    definition = version["definition"]
    if check and entries:
        allowed = eligible(conn, workflow, definition, [e.subscriber_id for e in entries], now)
        entries = [e for e in entries if e.subscriber_id in allowed]
    prefix = "test:" if test else ""        # a test run keeps no one out of the real one
    rows = [{"workflow_id": workflow["id"], "version_id": version["id"],
             "subscriber_id": e.subscriber_id, "entry_key": e.key[:200],
             "active_key": prefix + active_key(workflow["id"], e.subscriber_id), "state": "active",
             "node_id": definition["graph"]["start"], "visit": 1, "wake_at": now,
             "event_seen": False, "attempts": 0, "event": e.event, "test": test, "started_at": now}
            for e in entries]
    inserted = []
    for chunk in db.chunked(rows, CHUNK):
        inserted += conn.execute(db.insert_ignoring_conflicts(conn, enrollments).returning(
            enrollments.c.id, enrollments.c.subscriber_id), chunk).all()
    if not inserted:
        return {}
    if wake is not None:            # the runner takes the first step soon after the commit
        db.after_commit(conn, outbox.WAKE_KEY, wake)
    outbox.append_many(conn, "workflow.entered", [
        {"workflow_id": workflow["id"], "subscriber_id": subscriber_id, "enrollment_id": enrollment_id}
        for enrollment_id, subscriber_id in inserted], wake=wake)
    return {subscriber_id: enrollment_id for enrollment_id, subscriber_id in inserted}


def end_many(conn: Connection, items: list[dict], state: str, reason: str,
             now: datetime | None = None, wake=None) -> int:
    """Ends these active (or parked) enrollments as done or exited; the people may enter
    again later. `items` carry id, workflow_id and subscriber_id."""
    ended: set[int] = set()
    for chunk in db.chunked([item["id"] for item in items], CHUNK):
        ended.update(conn.execute(update(enrollments).where(
            db.lookup(conn, enrollments.c.id, chunk, enrollments.c.state.in_(("active", "parked")))).values(
            state=state, active_key=None, ended_at=now or utcnow(), end_reason=reason[:1000],
            lease_owner=None, lease_until=None, wake_at=None).returning(enrollments.c.id)).scalars())
    outbox.append_many(conn, "workflow.exited", [
        {"workflow_id": item["workflow_id"], "subscriber_id": item["subscriber_id"],
         "enrollment_id": item["id"], "state": state, "reason": reason}
        for item in items if item["id"] in ended], wake=wake)
    return len(ended)


def end(conn: Connection, enrollment: dict, state: str, reason: str, now: datetime | None = None,
        wake=None) -> bool:
    return bool(end_many(conn, [enrollment], state, reason, now, wake))


def exit_people(conn: Connection, subscriber_ids, reason: str, workflow_ids=None,
                wake=None) -> int:
    """Every active enrollment of these people (in these workflows) ends as exited."""
    rows = []
    for chunk in db.chunked(list(subscriber_ids), CHUNK):
        filters = [enrollments.c.state.in_(("active", "parked"))]
        if workflow_ids is not None:
            filters.append(enrollments.c.workflow_id.in_(list(workflow_ids)))
        rows += conn.execute(select(enrollments.c.id, enrollments.c.workflow_id,
                                    enrollments.c.subscriber_id).where(db.lookup(
            conn, enrollments.c.subscriber_id, chunk, *filters))).mappings().all()
    return end_many(conn, [dict(r) for r in rows], "exited", reason, wake=wake) if rows else 0


def stats(conn: Connection, workflow_id: int) -> dict[str, dict[str, int]]:
    """Per node: entered (people who reached it), waiting (there now), done (passed it),
    exited (left the workflow there), converted (of those who passed it, how many reached a
    goal node in the same run through the workflow)."""
    figures: dict[str, dict[str, int]] = {}

    def put(node_id, key, value):
        figures.setdefault(node_id, {"entered": 0, "waiting": 0, "done": 0, "exited": 0,
                                     "converted": 0})[key] = value

    for node_id, count in conn.execute(select(steps.c.node_id, func.count(func.distinct(
            steps.c.enrollment_id))).where(steps.c.workflow_id == workflow_id).group_by(steps.c.node_id)):
        put(node_id, "done", count)
    for node_id, count in conn.execute(select(enrollments.c.node_id, func.count()).where(
            enrollments.c.workflow_id == workflow_id, enrollments.c.state.in_(("active", "parked")))
            .group_by(enrollments.c.node_id)):
        put(node_id, "waiting", count)
    for node_id, count in conn.execute(select(enrollments.c.node_id, func.count()).where(
            enrollments.c.workflow_id == workflow_id, enrollments.c.state == "exited")
            .group_by(enrollments.c.node_id)):
        put(node_id, "exited", count)
    goals = _goal_nodes(conn, workflow_id)
    if goals:
        converted = select(steps.c.enrollment_id).where(
            steps.c.workflow_id == workflow_id, steps.c.node_id.in_(goals))
        for node_id, count in conn.execute(select(steps.c.node_id, func.count(func.distinct(
                steps.c.enrollment_id))).where(steps.c.workflow_id == workflow_id,
                                               steps.c.enrollment_id.in_(converted))
                .group_by(steps.c.node_id)):
            put(node_id, "converted", count)
    for item in figures.values():
        item["entered"] = item["done"] + item["waiting"] + item["exited"]
    return figures


def _goal_nodes(conn: Connection, workflow_id: int) -> list[str]:
    """The ids of goal nodes in any published version of the workflow."""
    found: set[str] = set()
    for definition in conn.execute(select(workflow_versions.c.definition).where(
            workflow_versions.c.workflow_id == workflow_id)).scalars():
        found.update(n["id"] for n in definition["graph"]["nodes"] if n["type"] == "goal")
    return sorted(found)


def page(conn: Connection, workflow_id: int, *, state: str | None = None, subscriber_id=None,
         limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    where = [enrollments.c.workflow_id == workflow_id]
    if state:
        where.append(enrollments.c.state == state)
    if subscriber_id is not None:
        where.append(enrollments.c.subscriber_id == subscriber_id)
    total = conn.execute(select(func.count()).select_from(enrollments).where(and_(*where))).scalar_one()
    rows = conn.execute(select(
        enrollments.c.id, enrollments.c.subscriber_id, subscribers.c.email, enrollments.c.version_id,
        enrollments.c.state, enrollments.c.node_id, enrollments.c.visit, enrollments.c.waiting_until,
        enrollments.c.waiting_for, enrollments.c.test, enrollments.c.started_at, enrollments.c.ended_at,
        enrollments.c.end_reason).join(subscribers, subscribers.c.id == enrollments.c.subscriber_id,
                                       isouter=True)
        .where(*where).order_by(enrollments.c.id.desc()).limit(limit).offset(offset)).mappings()
    return [dict(r) for r in rows], total


def timeline(conn: Connection, subscriber_id: int, limit: int) -> list[dict]:
    """extensions.PERSON_TIMELINE: each workflow step a person took, newest first."""
    rows = conn.execute(select(steps.c.at, steps.c.node_id, steps.c.visit, steps.c.branch,
                               workflows.c.name).join(
        enrollments, enrollments.c.id == steps.c.enrollment_id).join(
        workflows, workflows.c.id == steps.c.workflow_id).where(
        enrollments.c.subscriber_id == subscriber_id).order_by(steps.c.at.desc()).limit(limit))
    return [{"at": r.at, "kind": "workflow_step",
             "details": {"workflow": r.name, "step": r.node_id, "branch": r.branch,
                         "visit": r.visit if r.visit > 1 else None}} for r in rows]


def erase_people(conn: Connection, subscriber_ids) -> None:
    """subscriber.erased: their enrollments, steps and custom events go with them."""
    ids = list(subscriber_ids)
    conn.execute(steps.delete().where(steps.c.enrollment_id.in_(
        select(enrollments.c.id).where(enrollments.c.subscriber_id.in_(ids)))))
    conn.execute(enrollments.delete().where(enrollments.c.subscriber_id.in_(ids)))
    conn.execute(received_events.delete().where(received_events.c.subscriber_id.in_(ids)))
