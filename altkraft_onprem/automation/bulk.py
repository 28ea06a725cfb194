"""Bulk enrollment of a whole segment too big for one transaction (more than
workflows.MAX_MANUAL people): requested in the asking transaction, then done in the
background a chunk of people per transaction, each recording how far it got. The database is
the truth: a crash, a lost wake-up or two workers at once resume from `after_id`, and the
entry key bulk:REQUEST:SUBSCRIBER keeps a replayed chunk from enrolling anyone twice."""
from __future__ import annotations

import uuid

from sqlalchemy import Connection, Engine, func, insert, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound

from . import enrollment as enrollments
from .workflow_models import bulk_enrollments, workflow_versions, workflows

CHUNK = 2000


def segment_members(conn: Connection, segment_id: int, most: int) -> tuple[list[int], int]:
    """(the segment's people, how many there are), the segment evaluated once; the people
    only when they are at most `most` (else an empty list: they are too many for one go)."""
    where = segment_service.segment_expr(conn, segment_id)
    rows = conn.execute(select(subscribers.c.id, func.count().over()).where(where)
                        .limit(most + 1)).all()
    size = rows[0][1] if rows else 0
    return ([row[0] for row in rows] if size <= most else []), size


def request(conn: Connection, workflow_id: int, segment_id: int, *, test: bool, by: str,
            asked: int, wake=None) -> int:
    """Records the request (in the caller's transaction); returns its id."""
    bulk_id = conn.execute(insert(bulk_enrollments).values(
        workflow_id=workflow_id, segment_id=segment_id, request=uuid.uuid4().hex, test=test,
        requested_by=by[:320], asked=asked, after_id=0, entered=0, created_at=utcnow())
        .returning(bulk_enrollments.c.id)).scalar_one()
    if wake is not None:
        db.after_commit(conn, "automation.bulk", wake)
    return bulk_id


def run_due(engine: Engine, *, wake=None, max_chunks: int | None = None) -> int:
    """Chunks of the unfinished bulk enrollments, oldest first, one per transaction (at most
    `max_chunks`); returns how many people they looked at (enrolled or not)."""
    looked, chunks = 0, 0
    while max_chunks is None or chunks < max_chunks:
        with db.write(engine) as conn:
            query = select(bulk_enrollments).where(bulk_enrollments.c.finished_at.is_(None)).order_by(
                bulk_enrollments.c.id).limit(1)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).mappings().first()
            if row is None:
                break
            looked += _chunk(conn, dict(row), wake)
        chunks += 1
    return looked


def _finish(conn: Connection, bulk_id: int) -> int:
    conn.execute(update(bulk_enrollments).where(bulk_enrollments.c.id == bulk_id).values(
        finished_at=utcnow()))
    return 1            # looked at: the request itself (run_due goes on to the next one)


def _chunk(conn: Connection, bulk: dict, wake) -> int:
    workflow = conn.execute(select(workflows).where(
        workflows.c.id == bulk["workflow_id"])).mappings().first()
    if workflow is None or workflow["version_id"] is None or (
            workflow["state"] != "active" and not bulk["test"]):
        return _finish(conn, bulk["id"])            # archived or paused meanwhile: no more
    try:
        where = segment_service.segment_expr(conn, bulk["segment_id"])
    except NotFound:
        return _finish(conn, bulk["id"])            # the segment was deleted meanwhile
    ids = next(enrollments.people(conn, [where], CHUNK, after=bulk["after_id"]), [])
    if not ids:
        return _finish(conn, bulk["id"])
    version = conn.execute(select(workflow_versions).where(
        workflow_versions.c.id == workflow["version_id"])).mappings().one()
    event = {"manual": True, "by": bulk["requested_by"], "segment_id": bulk["segment_id"]}
    entered = enrollments.enter_many(conn, dict(workflow), dict(version), [
        enrollments.Entry(sid, f"bulk:{bulk['request']}:{sid}", event) for sid in ids],
        test=bulk["test"], check=not bulk["test"], wake=wake)
    conn.execute(update(bulk_enrollments).where(bulk_enrollments.c.id == bulk["id"]).values(
        after_id=ids[-1], entered=bulk_enrollments.c.entered + len(entered)))
    return len(ids)


def pending(conn: Connection, workflow_id: int) -> list[dict]:
    """The workflow's unfinished bulk enrollments (for its page)."""
    return [dict(r) for r in conn.execute(select(bulk_enrollments).where(
        bulk_enrollments.c.workflow_id == workflow_id, bulk_enrollments.c.finished_at.is_(None))
        .order_by(bulk_enrollments.c.id)).mappings()]
