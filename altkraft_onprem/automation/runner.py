"""The step runner: one node per enrollment per transaction.

An enrollment is due when its wake time has come. The runner leases due enrollments
(SKIP LOCKED on Postgres), then runs each one step at a time: in ONE transaction it re-reads
the enrollment under its lease, executes the node (nodes.py), inserts the step row
(enrollment, node, visit — UNIQUE) and moves the enrollment to the next node. A crash
anywhere rolls all of that back, so no step runs twice and none is lost: the lease expires
and the next runner (the minute tick, a consumer start) does the step again from scratch.
The HTTP node is the one at-least-once step (http_node.py).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns.ledger import owner_dead
from altkraft_onprem.db.types import utcnow

from . import enrollment as enrollments
from . import http_node, mail
from .definition import WorkflowDefinition
from .nodes import EXECUTORS, Outcome, Step
from .validate import branches
from .workflow_models import enrollments as enrollment_rows
from .workflow_models import steps, workflow_versions, workflows

log = logging.getLogger("altkraft.automation")
LEASE_SECONDS = 120
BATCH = 100
STEPS_PER_CLAIM = 50         # an enrollment runs on through instant nodes, up to this many
_versions: dict[tuple[str, int], dict] = {}


def version(conn: Connection, version_id: int) -> dict:
    """A published version (immutable, so cached for good; per database, as a process may
    reach more than one: tests, the CLI)."""
    key = (str(conn.engine.url), version_id)
    found = _versions.get(key)
    if found is None:
        row = conn.execute(select(workflow_versions).where(
            workflow_versions.c.id == version_id)).mappings().one()
        found = dict(row)
        found["nodes"] = {n["id"]: n for n in found["definition"]["graph"]["nodes"]}
        parsed = WorkflowDefinition.model_validate(found["definition"])
        found["branches"] = {n.id: branches(n) for n in parsed.graph.nodes}
        found["edges"] = {(e["from"], e.get("branch")): e["to"]
                          for e in found["definition"]["graph"]["edges"]}
        _versions[key] = found
    return found


def claim(conn: Connection, owner: str, size: int = BATCH, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    due = select(enrollment_rows.c.id).join(workflows, workflows.c.id == enrollment_rows.c.workflow_id).where(
        enrollment_rows.c.state == "active", enrollment_rows.c.wake_at <= now,
        or_(enrollment_rows.c.lease_until.is_(None), enrollment_rows.c.lease_until < now),
        or_(workflows.c.state == "active", enrollment_rows.c.test.is_(True))
    ).order_by(enrollment_rows.c.wake_at, enrollment_rows.c.id).limit(size)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(of=enrollment_rows, skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if ids:
        conn.execute(update(enrollment_rows).where(enrollment_rows.c.id.in_(ids)).values(
            lease_owner=owner, lease_until=now + timedelta(seconds=LEASE_SECONDS)))
    return ids


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


def _leased(conn: Connection, enrollment_id: int, owner: str) -> dict | None:
    query = select(enrollment_rows).where(enrollment_rows.c.id == enrollment_id,
                                          enrollment_rows.c.lease_owner == owner,
                                          enrollment_rows.c.state == "active")
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def run_due(engine: Engine, settings, owner: str, *, wake=None, max_batches: int | None = None,
            now: datetime | None = None) -> int:
    """Runs due enrollments until none is; returns the number of steps taken."""
    taken = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with db.write(engine) as conn:
            ids = claim(conn, owner, now=now)
        if not ids:
            break
        for enrollment_id in ids:
            for _ in range(STEPS_PER_CLAIM):
                result = step(engine, settings, enrollment_id, owner, wake=wake, now=now)
                if result is None:
                    break
                taken += 1
                if not result:
                    break
        with db.write(engine) as conn:         # what is still leased (a long chain) goes back
            conn.execute(update(enrollment_rows).where(
                enrollment_rows.c.id.in_(ids), enrollment_rows.c.lease_owner == owner).values(
                lease_owner=None, lease_until=None))
        batches += 1
    return taken


def step(engine: Engine, settings, enrollment_id: int, owner: str, *, wake=None,
         now: datetime | None = None) -> bool | None:
    """One node. True: it moved on and may go on at once; False: it waits (or ended);
    None: nothing done (lease lost, not active)."""
    answer = None
    for _ in range(2):
        with db.write(engine) as conn:
            current = _leased(conn, enrollment_id, owner)
            if current is None:
                return None
            node = version(conn, current["version_id"])["nodes"].get(current["node_id"])
            if node is None or node["type"] != "webhook" or answer is not None:
                return _advance(conn, settings, current, now or utcnow(), wake, answer)
        # An HTTP node: the request goes out between two transactions, never inside one.
        answer = http_node.call(engine, settings, current, node)
    return None


def _advance(conn: Connection, settings, current: dict, now: datetime, wake, answer) -> bool:
    found = version(conn, current["version_id"])
    node = found["nodes"].get(current["node_id"])
    if node is None:
        enrollments.end(conn, current, "exited", f"node {current['node_id']} is not in version "
                        f"{found['number']}", now, wake=wake)
        return False
    people = audience.render_context(conn, [current["subscriber_id"]])
    person = people.get(current["subscriber_id"])
    if person is None or _gone(conn, current["subscriber_id"]):
        enrollments.end(conn, current, "exited", "the subscriber was deleted", now, wake=wake)
        return False
    context = Step(conn, settings, current, found["definition"], node, now, person, wake,
                   send_email=mail.send_email_node)
    if node["type"] == "webhook":
        outcome = http_node.outcome(context, answer)
    else:
        outcome = EXECUTORS[node["type"]](context)
    if outcome.wait_until is not None:
        conn.execute(update(enrollment_rows).where(enrollment_rows.c.id == current["id"]).values(
            wake_at=outcome.wait_until, waiting_until=outcome.wait_until,
            waiting_for=outcome.detail.get("waiting_for"), lease_owner=None, lease_until=None,
            **({"attempts": outcome.detail["attempt"]} if "attempt" in outcome.detail else {})))
        return False
    if outcome.detail.get("failed") and (node["id"], "failure") not in found["edges"]:
        outcome.detail["park"] = f"node {node['id']} failed: {outcome.detail.get('error')}"
    if outcome.detail.get("park"):
        conn.execute(update(enrollment_rows).where(enrollment_rows.c.id == current["id"]).values(
            state="parked", wake_at=None, end_reason=outcome.detail["park"][:1000],
            lease_owner=None, lease_until=None))
        return False
    _record_step(conn, current, node, outcome, now)
    if outcome.end is not None:
        enrollments.end(conn, current, "exited", outcome.end, now, wake=wake)
        return False
    following = outcome.jump or found["edges"].get((node["id"], outcome.branch))
    if following is None:
        enrollments.end(conn, current, "done", "reached the end", now, wake=wake)
        return False
    visits = conn.execute(select(func.count()).select_from(steps).where(
        steps.c.enrollment_id == current["id"], steps.c.node_id == following)).scalar_one()
    conn.execute(update(enrollment_rows).where(enrollment_rows.c.id == current["id"]).values(
        node_id=following, visit=visits + 1, wake_at=now, waiting_until=None, waiting_for=None,
        event_seen=False, attempts=0))
    return True


def _record_step(conn: Connection, current: dict, node: dict, outcome: Outcome, now: datetime) -> int:
    """The step row: (enrollment, node, visit) is UNIQUE — a second run of the same visit
    fails here and rolls its effects back with it."""
    return conn.execute(steps.insert().values(
        enrollment_id=current["id"], workflow_id=current["workflow_id"], node_id=node["id"],
        visit=current["visit"], branch=outcome.branch, detail=outcome.detail, at=now)
        .returning(steps.c.id)).scalar_one()


def _gone(conn: Connection, subscriber_id: int) -> bool:
    row = conn.execute(select(subscribers.c.deleted_at).where(subscribers.c.id == subscriber_id)).first()
    return row is None or row.deleted_at is not None


def wake_waiting(conn: Connection, subscriber_id: int, event_name: str, now: datetime | None = None) -> int:
    """An awaited event arrived: enrollments waiting for it go on at once (event branch)."""
    return conn.execute(update(enrollment_rows).where(and_(
        enrollment_rows.c.subscriber_id == subscriber_id, enrollment_rows.c.state == "active",
        enrollment_rows.c.waiting_for == event_name)).values(
        event_seen=True, wake_at=now or utcnow())).rowcount
