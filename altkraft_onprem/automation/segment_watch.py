"""segment_entered / segment_left: who came into or went out of a segment.

A segment is defined by conditions, not by events, so its changes are found by looking: the
segments that active workflows' triggers (and exit segments) use are re-evaluated every
`automation.segment_check_minutes` and compared with the membership stored at the last look
(workflow_segment_members). The comparison is two set-based queries (in the segment and not in
the snapshot; in the snapshot and no longer in the segment), taken a chunk at a time: each
chunk updates the snapshot and enrolls those people in ONE transaction, so a change is acted
on exactly once. When a segment starts being watched (at publish) its members are stored
without enrolling anyone: people who are in it already have not entered it (a backfill on
activation takes them in when that is wanted).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, delete, exists, insert, literal, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow

from . import enrollment as enrollments
from . import triggers
from .workflow_models import enrollments as enrollment_rows
from .workflow_models import segment_members, segment_watch

log = logging.getLogger("altkraft.automation")
SEGMENT_TRIGGERS = ("segment_entered", "segment_left")
CHUNK = 5000


def watched_by(definition: dict) -> set[int]:
    """The segments a workflow's trigger and exit segment make us watch."""
    found = set()
    trigger = definition["trigger"]
    if trigger["type"] in SEGMENT_TRIGGERS:
        found.add(trigger["segment_id"])
    if definition.get("entry", {}).get("exit_segment_id") is not None:
        found.add(definition["entry"]["exit_segment_id"])
    return found


def start_watching(conn: Connection, segment_ids: set[int], now: datetime | None = None) -> None:
    """Stores the current members of segments not watched yet (at publish)."""
    now = now or utcnow()
    for segment_id in sorted(segment_ids):
        inserted = conn.execute(db.insert_ignoring_conflicts(conn, segment_watch).values(
            segment_id=segment_id, baselined_at=now, checked_at=now)
            .returning(segment_watch.c.segment_id)).first()
        if inserted is not None:
            conn.execute(insert(segment_members).from_select(
                ["segment_id", "subscriber_id"],
                select(literal(segment_id), subscribers.c.id).where(
                    segment_service.segment_expr(conn, segment_id))))


def run_due(engine: Engine, settings, now: datetime | None = None, wake=None) -> int:
    """Checks the watched segments whose interval has passed; returns how many entered."""
    now = now or utcnow()
    every = timedelta(minutes=settings["automation.segment_check_minutes"])
    with db.write(engine) as conn:
        running = triggers.active(conn)
        wanted = set().union(*(watched_by(v["definition"]) for _, v in running)) if running else set()
        conn.execute(delete(segment_watch).where(segment_watch.c.segment_id.not_in(sorted(wanted))))
        start_watching(conn, wanted, now)
        due = list(conn.execute(select(segment_watch.c.segment_id).where(
            segment_watch.c.checked_at <= now - every)).scalars())
    entered = 0
    for segment_id in due:
        try:
            entered += check(engine, segment_id, now, wake)
        except Exception as exc:  # noqa: BLE001 - one segment's fault must not stop the others
            if db.is_busy(exc):
                raise
            log.exception("segment %s could not be checked for workflows", segment_id)
    return entered


def check(engine: Engine, segment_id: int, now: datetime, wake=None) -> int:
    """The segment against its snapshot: entered, then left, a chunk per transaction."""
    generation = now.strftime("%Y%m%dT%H%M%S")
    entered = 0
    for direction in ("entered", "left"):
        while True:
            with db.write(engine) as conn:
                if not _lock(conn, segment_id):
                    return entered
                ids = _changed(conn, segment_id, direction)
                if not ids:
                    break
                if direction == "entered":
                    conn.execute(insert(segment_members), [
                        {"segment_id": segment_id, "subscriber_id": i} for i in ids])
                else:
                    conn.execute(delete(segment_members).where(
                        segment_members.c.segment_id == segment_id,
                        segment_members.c.subscriber_id.in_(ids)))
                entered += _enroll(conn, segment_id, f"segment_{direction}", ids, generation, now, wake)
                _exit(conn, segment_id, ids if direction == "entered" else [], wake)
    with db.write(engine) as conn:
        conn.execute(update(segment_watch).where(segment_watch.c.segment_id == segment_id)
                     .values(checked_at=now))
    return entered


def _lock(conn: Connection, segment_id: int) -> bool:
    """The watch row, locked on Postgres so two checks of one segment take turns (SQLite's
    write lock does it there); False when the segment is no longer watched."""
    query = select(segment_watch.c.segment_id).where(segment_watch.c.segment_id == segment_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first() is not None


def _changed(conn: Connection, segment_id: int, direction: str) -> list[int]:
    member = exists().where(segment_members.c.segment_id == segment_id,
                            segment_members.c.subscriber_id == subscribers.c.id)
    inside = segment_service.segment_expr(conn, segment_id)
    if direction == "entered":
        query = select(subscribers.c.id).where(inside, ~member).order_by(subscribers.c.id)
    else:
        still = select(subscribers.c.id).where(subscribers.c.id == segment_members.c.subscriber_id,
                                               inside).exists()
        query = select(segment_members.c.subscriber_id).where(
            segment_members.c.segment_id == segment_id, ~still).order_by(
            segment_members.c.subscriber_id)
    return list(conn.execute(query.limit(CHUNK)).scalars())


def _enroll(conn: Connection, segment_id: int, kind: str, ids: list[int], generation: str,
            now: datetime, wake) -> int:
    entered = 0
    for workflow, version in triggers.active(conn):
        trigger = version["definition"]["trigger"]
        if trigger["type"] == kind and trigger["segment_id"] == segment_id:
            entered += len(enrollments.enter_many(conn, workflow, version, [
                enrollments.Entry(i, f"{kind}:{segment_id}:{generation}:{workflow['id']}:{i}",
                                  {"segment_id": segment_id}) for i in ids], now=now, wake=wake))
    return entered


def _exit(conn: Connection, segment_id: int, ids: list[int], wake) -> None:
    """People who came into a workflow's exit segment leave it."""
    if not ids:
        return
    leaving = [w["id"] for w, v in triggers.active(conn)
               if v["definition"].get("entry", {}).get("exit_segment_id") == segment_id]
    if leaving:
        enrollments.exit_people(conn, ids, f"entered the exit segment {segment_id}",
                                workflow_ids=leaving, wake=wake)


def exit_members(conn: Connection, workflow_id: int, segment_id: int, wake=None) -> int:
    """Everyone inside the workflow who is in its exit segment now leaves (at publish)."""
    ids = list(conn.execute(select(enrollment_rows.c.subscriber_id).where(and_(
        enrollment_rows.c.workflow_id == workflow_id,
        enrollment_rows.c.state.in_(("active", "parked")),
        enrollment_rows.c.subscriber_id.in_(select(subscribers.c.id).where(
            segment_service.segment_expr(conn, segment_id)))))).scalars())
    return enrollments.exit_people(conn, ids, f"in the exit segment {segment_id}",
                                   workflow_ids=[workflow_id], wake=wake) if ids else 0
