"""The step runner: claims due enrollments in batches and takes them through their nodes.

A claim is ONE statement: it leases up to BATCH due enrollments waiting at the same node of
the same version, the oldest due first (SKIP LOCKED on Postgres, so runners on several
machines never share one). The batch then runs one node per transaction for all of them at
once (batches.py); those that move on to a node they may run now go on under the same lease,
grouped by their next node, for up to ROUNDS_PER_CLAIM transactions; whatever is still leased
then is released. A batch whose transaction fails runs again one enrollment at a time, and an
enrollment that fails alone is parked with the error (a person may resume it): one bad record
never stalls the rest. The HTTP node is the one at-least-once step: each request goes out
between transactions, never inside one (http_node.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, or_, select, update

from altkraft_onprem import db
from altkraft_onprem.campaigns.ledger import owner_dead
from altkraft_onprem.db.types import utcnow

from . import batches, http_node
from .batches import Result
from .versions import version
from .workflow_models import enrollments as enrollment_rows
from .workflow_models import workflows

log = logging.getLogger("altkraft.automation")
LEASE_SECONDS = 120
BATCH = 500
ROUNDS_PER_CLAIM = 50       # transactions one claim may run before its lease is given back

Place = tuple[int, str]      # (version id, node id)


def _due(now: datetime) -> list:
    return [enrollment_rows.c.state == "active", enrollment_rows.c.wake_at <= now,
            or_(enrollment_rows.c.lease_owner.is_(None), enrollment_rows.c.lease_until < now),
            or_(workflows.c.state == "active", enrollment_rows.c.test.is_(True))]


def _batch_size(conn: Connection, place: Place, size: int, settings) -> int:
    """HTTP requests go one after another within the lease: fewer at once for those."""
    node = version(conn, place[0])["nodes"].get(place[1])
    if node is None or node["type"] != "webhook":
        return size
    timeout = settings["automation.webhook_timeout_seconds"] if settings is not None else 10
    return max(1, min(size, int(LEASE_SECONDS / (2 * max(timeout, 1)))))


def claim(conn: Connection, owner: str, size: int = BATCH, now: datetime | None = None,
          settings=None) -> tuple[Place, list[int]] | None:
    """Leases due enrollments at the node of the oldest due one; None when none is due."""
    now = now or utcnow()
    joined = enrollment_rows.join(workflows, workflows.c.id == enrollment_rows.c.workflow_id)
    head = conn.execute(select(enrollment_rows.c.version_id, enrollment_rows.c.node_id)
                        .select_from(joined).where(*_due(now))
                        .order_by(enrollment_rows.c.wake_at, enrollment_rows.c.id).limit(1)).first()
    if head is None:
        return None
    place = (head.version_id, head.node_id)
    chosen = select(enrollment_rows.c.id).select_from(joined).where(
        *_due(now), enrollment_rows.c.version_id == place[0], enrollment_rows.c.node_id == place[1]
    ).order_by(enrollment_rows.c.wake_at, enrollment_rows.c.id).limit(
        _batch_size(conn, place, size, settings))
    if conn.dialect.name == "postgresql":
        chosen = chosen.with_for_update(of=enrollment_rows, skip_locked=True)
    ids = conn.execute(update(enrollment_rows).where(enrollment_rows.c.id.in_(chosen.scalar_subquery()))
                       .values(lease_owner=owner, lease_until=now + timedelta(seconds=LEASE_SECONDS))
                       .returning(enrollment_rows.c.id)).scalars().all()
    return (place, sorted(ids)) if ids else None


def recover(conn: Connection) -> int:
    """Leases of runners that died on this host go at once (others expire by time): a
    consumer's start and the minute tick call it."""
    owners = conn.execute(select(enrollment_rows.c.lease_owner).where(
        enrollment_rows.c.lease_owner.is_not(None)).distinct()).scalars().all()
    freed = 0
    for owner in owners:
        if owner_dead(owner):
            freed += conn.execute(update(enrollment_rows).where(
                enrollment_rows.c.lease_owner == owner).values(lease_owner=None, lease_until=None)).rowcount
    return freed


def run_due(engine: Engine, settings, owner: str, *, wake=None, max_batches: int | None = None,
            now: datetime | None = None) -> int:
    """Runs due enrollments until none is; returns the number of steps taken."""
    taken = 0
    claims = 0
    while max_batches is None or claims < max_batches:
        with db.write(engine) as conn:
            claimed = claim(conn, owner, now=now, settings=settings)
        if claimed is None:
            break
        taken += _run_claim(engine, settings, owner, *claimed, wake=wake, now=now)
        claims += 1
    return taken


def _run_claim(engine: Engine, settings, owner: str, place: Place, ids: list[int], *, wake,
               now) -> int:
    taken = 0
    pending: list[tuple[Place, list[int]]] = [(place, ids)]
    try:
        for _ in range(ROUNDS_PER_CLAIM):
            if not pending:
                break
            at, group = pending.pop(0)
            result = _run_isolated(engine, settings, owner, at, group, wake=wake, now=now)
            taken += result.taken
            pending.extend(result.moved.items())
    finally:        # what is still leased (a long chain, a node changed meanwhile) goes back
        with db.write(engine) as conn:
            for chunk in db.chunked(ids, batches.CHUNK):
                conn.execute(update(enrollment_rows).where(
                    db.lookup(conn, enrollment_rows.c.id, chunk, enrollment_rows.c.lease_owner == owner)).values(
                    lease_owner=None, lease_until=None))
    return taken


def _run_isolated(engine: Engine, settings, owner: str, at: Place, ids: list[int], *, wake,
                  now) -> Result:
    """The batch; if its transaction fails, each enrollment alone; one that fails alone is
    parked with the error. A busy database is not a fault: it stops this run (the leases
    expire, the minute tick tries again)."""
    try:
        return step_many(engine, settings, owner, at, ids, wake=wake, now=now)
    except Exception as exc:
        if db.is_busy(exc):
            raise
        if len(ids) == 1:
            log.exception("workflow enrollment %s failed at node %s", ids[0], at[1])
            _park(engine, ids[0], owner, f"node {at[1]} failed: {type(exc).__name__}: {exc}")
            return Result()
        log.warning("a batch at node %s failed (%s); running its %d enrollments one by one",
                    at[1], exc, len(ids))
    total = Result()
    for enrollment_id in ids:
        total.add(_run_isolated(engine, settings, owner, at, [enrollment_id], wake=wake, now=now))
    return total


def step_many(engine: Engine, settings, owner: str, at: Place, ids: list[int], *, wake=None,
              now: datetime | None = None) -> Result:
    """The node `at` for these enrollments leased to `owner`; errors propagate. An HTTP node
    makes each request first, outside any transaction, then records its answer."""
    with db.read(engine) as conn:
        node = version(conn, at[0])["nodes"].get(at[1])
    if node is None or node["type"] != "webhook":
        return batches.run(engine, settings, owner, ids, at, now=now, wake=wake)
    total = Result()
    for enrollment_id in ids:
        with db.read(engine) as conn:
            rows = batches.leased(conn, [enrollment_id], owner, at, lock=False)
        if rows:
            answer = http_node.call(engine, settings, rows[0], node)
            total.add(batches.run(engine, settings, owner, [enrollment_id], at, now=now, wake=wake,
                                  answers={enrollment_id: answer}))
    return total


def step(engine: Engine, settings, enrollment_id: int, owner: str, *, wake=None,
         now: datetime | None = None) -> Result | None:
    """One node for one enrollment leased to `owner` (None: it is not active)."""
    with db.read(engine) as conn:
        row = conn.execute(select(enrollment_rows.c.version_id, enrollment_rows.c.node_id).where(
            enrollment_rows.c.id == enrollment_id, enrollment_rows.c.state == "active")).first()
    if row is None:
        return None
    return step_many(engine, settings, owner, (row.version_id, row.node_id), [enrollment_id],
                     wake=wake, now=now)


def _park(engine: Engine, enrollment_id: int, owner: str, reason: str) -> None:
    with db.write(engine) as conn:
        conn.execute(update(enrollment_rows).where(
            enrollment_rows.c.id == enrollment_id, enrollment_rows.c.lease_owner == owner,
            enrollment_rows.c.state == "active").values(
            state="parked", wake_at=None, end_reason=reason[:1000], lease_owner=None, lease_until=None))


def wake_waiting(conn: Connection, subscriber_id: int, event_name: str, now: datetime | None = None) -> int:
    """An awaited event arrived: enrollments waiting for it go on at once (event branch)."""
    return conn.execute(update(enrollment_rows).where(and_(
        enrollment_rows.c.subscriber_id == subscriber_id, enrollment_rows.c.state == "active",
        enrollment_rows.c.waiting_for == event_name)).values(
        event_seen=True, wake_at=now or utcnow())).rowcount
