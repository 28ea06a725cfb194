"""Enrollments: who enters a workflow (entry filter, re-entry policy, one active at a time),
who leaves, and the figures per node.

`enter` inserts under two UNIQUE keys (entry_key, active_key) with ON CONFLICT DO NOTHING:
whatever replays the cause — an outbox row dispatched again, a repeated API call with the
same idempotency key — finds the row there and enrolls no one.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow

from . import outbox
from .models import received_events
from .workflow_models import enrollments, steps, workflows


def active_key(workflow_id: int, subscriber_id: int) -> str:
    return f"{workflow_id}:{subscriber_id}"


def may_enter(conn: Connection, workflow: dict, definition: dict, subscriber_id: int,
              now: datetime) -> bool:
    """The entry filter and the re-entry policy (the active-key does the rest)."""
    where = [subscribers.c.id == subscriber_id, subscribers.c.deleted_at.is_(None),
             subscribers.c.state == "active"]
    segment_id = definition.get("entry", {}).get("segment_id")
    if segment_id is not None:
        where.append(segment_service.segment_expr(conn, segment_id))
    if conn.execute(select(subscribers.c.id).where(*where)).first() is None:
        return False
    reentry = definition.get("entry", {}).get("reentry", "once")
    if reentry == "every_time":
        return True
    earlier = select(func.max(enrollments.c.started_at)).where(
        enrollments.c.workflow_id == workflow["id"], enrollments.c.subscriber_id == subscriber_id,
        enrollments.c.test.is_(False))
    last = conn.execute(earlier).scalar()
    if reentry == "once":
        return last is None
    return last is None or now - last >= timedelta(days=reentry["after_days"])


def enter(conn: Connection, workflow: dict, version: dict, subscriber_id: int, entry_key: str,
          event: dict, *, test: bool = False, now: datetime | None = None,
          check: bool = True, wake=None) -> int | None:
    """Enrolls one person at the start node (None: filtered out, or already enrolled for this
    cause, or already inside)."""
    now = now or utcnow()
    definition = version["definition"]
    if check and not may_enter(conn, workflow, definition, subscriber_id, now):
        return None
    result = conn.execute(db.insert_ignoring_conflicts(conn, enrollments).values(
        workflow_id=workflow["id"], version_id=version["id"], subscriber_id=subscriber_id,
        entry_key=entry_key[:200],
        # a test run does not keep the person out of (or in) the real one
        active_key=("test:" if test else "") + active_key(workflow["id"], subscriber_id),
        state="active", node_id=definition["graph"]["start"], visit=1, wake_at=now,
        event_seen=False, attempts=0, event=event, test=test, started_at=now))
    if not result.rowcount:
        return None
    enrollment_id = conn.execute(select(enrollments.c.id).where(
        enrollments.c.entry_key == entry_key[:200])).scalar_one()
    if wake is not None:            # the runner takes the first step soon after the commit
        db.after_commit(conn, outbox.WAKE_KEY, wake)
    outbox.append(conn, "workflow.entered", {"workflow_id": workflow["id"],
                                            "subscriber_id": subscriber_id,
                                            "enrollment_id": enrollment_id}, wake=wake)
    return enrollment_id


def end(conn: Connection, enrollment: dict, state: str, reason: str, now: datetime | None = None,
        wake=None) -> bool:
    """Ends an active enrollment (done or exited); the person may enter again later."""
    changed = conn.execute(update(enrollments).where(
        enrollments.c.id == enrollment["id"], enrollments.c.state.in_(("active", "parked"))).values(
        state=state, active_key=None, ended_at=now or utcnow(), end_reason=reason[:1000],
        lease_owner=None, lease_until=None, wake_at=None)).rowcount
    if changed:
        outbox.append(conn, "workflow.exited", {
            "workflow_id": enrollment["workflow_id"], "subscriber_id": enrollment["subscriber_id"],
            "enrollment_id": enrollment["id"], "state": state, "reason": reason}, wake=wake)
    return bool(changed)


def exit_people(conn: Connection, subscriber_ids, reason: str, workflow_ids=None,
                wake=None) -> int:
    """Every active enrollment of these people (in these workflows) ends as exited."""
    where = [enrollments.c.subscriber_id.in_(list(subscriber_ids)),
             enrollments.c.state.in_(("active", "parked"))]
    if workflow_ids is not None:
        where.append(enrollments.c.workflow_id.in_(list(workflow_ids)))
    rows = conn.execute(select(enrollments.c.id, enrollments.c.workflow_id,
                               enrollments.c.subscriber_id).where(*where)).mappings().all()
    return sum(end(conn, dict(r), "exited", reason, wake=wake) for r in rows)


def stats(conn: Connection, workflow_id: int) -> dict[str, dict[str, int]]:
    """Per node: entered (people who reached it), waiting (there now), done (passed it),
    exited (left the workflow there)."""
    figures: dict[str, dict[str, int]] = {}

    def put(node_id, key, value):
        figures.setdefault(node_id, {"entered": 0, "waiting": 0, "done": 0, "exited": 0})[key] = value

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
    for item in figures.values():
        item["entered"] = item["done"] + item["waiting"] + item["exited"]
    return figures


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
