"""One node for a batch of enrollments, in ONE transaction.

The runner leases due enrollments waiting at the same node of the same version; `run`
re-reads those still leased to it, executes the node for all of them at once (nodes.py:
set-based SQL where the node allows), then writes every step row (enrollment, node, visit —
UNIQUE) and moves each enrollment on, in bulk, before the one commit. One node per
enrollment per transaction, as before — only many enrollments share the transaction. A crash
anywhere rolls all of it back: no step runs twice and none is lost (the lease expires, or is
freed when the runner is found dead, and the batch runs again from scratch).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow

from . import enrollment as enrollments
from .nodes import EXECUTORS
from .step_context import Batch, Outcome, count_by
from .versions import version
from .workflow_models import enrollments as enrollment_rows
from .workflow_models import steps

CHUNK = 2000
_RELEASED = {"lease_owner": None, "lease_until": None}
_MANY_GROUPS = 8            # beyond this many distinct value sets, one executemany instead


@dataclass
class Result:
    taken: int = 0                                  # step rows written
    # enrollments that went on to a node they may run now: (version, node) -> ids
    moved: dict[tuple[int, str], list[int]] = field(default_factory=dict)

    def add(self, other: Result) -> None:
        self.taken += other.taken
        for place, ids in other.moved.items():
            self.moved.setdefault(place, []).extend(ids)


def run(engine: Engine, settings, owner: str, ids: list[int], at: tuple[int, str], *,
        now: datetime | None = None, wake=None, answers: dict | None = None) -> Result:
    """The node `at` (version id, node id) for those of `ids` still leased to `owner` and
    still there (a publish with a node map may have moved some: they are left alone)."""
    with db.write(engine) as conn:
        rows = leased(conn, ids, owner, at)
        if not rows:
            return Result()
        return execute(conn, settings, rows, now or utcnow(), wake, answers or {})


def leased(conn: Connection, ids: list[int], owner: str, at: tuple[int, str], *,
           lock: bool = True) -> list[dict]:
    """Those of `ids` still leased to `owner`, active and at `at` (locked on Postgres)."""
    found: list[dict] = []
    for chunk in db.chunked(ids, CHUNK):
        query = select(enrollment_rows).where(
            enrollment_rows.c.id.in_(chunk), enrollment_rows.c.lease_owner == owner,
            enrollment_rows.c.state == "active", enrollment_rows.c.version_id == at[0],
            enrollment_rows.c.node_id == at[1]).order_by(enrollment_rows.c.id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found += [dict(r) for r in conn.execute(query).mappings()]
    return found


def execute(conn: Connection, settings, rows: list[dict], now: datetime, wake,
            answers: dict) -> Result:
    found = version(conn, rows[0]["version_id"])
    node = found["nodes"].get(rows[0]["node_id"])
    if node is None:
        enrollments.end_many(conn, rows, "exited", f"node {rows[0]['node_id']} is not in version "
                             f"{found['number']}", now, wake=wake)
        return Result()
    rows = _leave(conn, rows, _present(conn, [r["subscriber_id"] for r in rows]), False,
                  "the subscriber was deleted", now, wake)
    exit_segment = found["definition"].get("entry", {}).get("exit_segment_id")
    if exit_segment is not None and rows:
        rows = _leave(conn, rows, _present(conn, [r["subscriber_id"] for r in rows], exit_segment),
                      True, f"in the exit segment {exit_segment}", now, wake)
    if not rows:
        return Result()
    batch = Batch(conn, settings, found, node, now, rows, wake, answers)
    outcomes = EXECUTORS[node["type"]](batch)
    return _apply(conn, found, node, list(zip(rows, outcomes, strict=True)), now, wake)


def _present(conn: Connection, subscriber_ids: list[int], segment_id: int | None = None) -> set[int]:
    """Who is still there (not deleted, not in the trash) — and in the segment, if one is given."""
    where = segment_service.segment_expr(conn, segment_id) if segment_id is not None else \
        subscribers.c.deleted_at.is_(None)
    found: set[int] = set()
    for chunk in db.chunked(sorted(set(subscriber_ids)), CHUNK):
        found.update(conn.execute(select(subscribers.c.id).where(
            subscribers.c.id.in_(chunk), where)).scalars())
    return found


def _leave(conn: Connection, rows: list[dict], found: set[int], leave_found: bool, reason: str,
           now: datetime, wake) -> list[dict]:
    """Ends the enrollments of those in `found` (leave_found) or not in it; returns the rest."""
    leaving = [r for r in rows if (r["subscriber_id"] in found) == leave_found]
    if leaving:
        enrollments.end_many(conn, leaving, "exited", reason, now, wake=wake)
    return [r for r in rows if (r["subscriber_id"] in found) != leave_found]


def _apply(conn: Connection, found: dict, node: dict, pairs: list[tuple[dict, Outcome]],
           now: datetime, wake) -> Result:
    """Waits, parks, step rows, ends and moves of one batch, in bulk."""
    changes: list[tuple[int, dict]] = []
    stepped: list[tuple[dict, Outcome]] = []
    for row, outcome in pairs:
        if outcome.wait_until is not None:
            changes.append((row["id"], {"wake_at": outcome.wait_until,
                                        "waiting_until": outcome.wait_until,
                                        "waiting_for": outcome.detail.get("waiting_for"),
                                        "attempts": outcome.detail.get("attempt", row["attempts"]),
                                        **_RELEASED}))
            continue
        if outcome.detail.get("failed") and (node["id"], "failure") not in found["edges"]:
            outcome.detail["park"] = f"node {node['id']} failed: {outcome.detail.get('error')}"
        if outcome.detail.get("park"):
            changes.append((row["id"], {"state": "parked", "wake_at": None,
                                        "end_reason": outcome.detail["park"][:1000], **_RELEASED}))
            continue
        stepped.append((row, outcome))
    _update_each(conn, changes)
    if not stepped:
        return Result()
    conn.execute(steps.insert(), [
        {"enrollment_id": row["id"], "workflow_id": row["workflow_id"], "node_id": node["id"],
         "visit": row["visit"], "branch": outcome.branch, "detail": outcome.detail, "at": now}
        for row, outcome in stepped])
    return Result(taken=len(stepped), moved=_move_on(conn, found, node, stepped, now, wake))


def _move_on(conn: Connection, found: dict, node: dict, stepped: list[tuple[dict, Outcome]],
             now: datetime, wake) -> dict[tuple[int, str], list[int]]:
    ends: dict[tuple[str, str], list[dict]] = defaultdict(list)
    following: dict[str, list[dict]] = defaultdict(list)
    for row, outcome in stepped:
        if outcome.end is not None:
            ends[("exited", outcome.end)].append(row)
            continue
        target = outcome.jump or found["edges"].get((node["id"], outcome.branch))
        if target is None:
            ends[("done", "reached the end")].append(row)
        else:
            following[target].append(row)
    for (state, reason), rows in ends.items():
        enrollments.end_many(conn, rows, state, reason, now, wake=wake)
    moved: dict[tuple[int, str], list[int]] = {}
    changes = []
    for target, rows in following.items():
        # The visit of the next node: one more than the steps already taken there (written
        # above for this node, so a goto to itself counts this step too).
        seen = count_by(conn, lambda chunk, target=target: (
            steps.c.enrollment_id.in_(chunk), steps.c.node_id == target), steps.c.enrollment_id,
            [r["id"] for r in rows])
        for row in rows:
            changes.append((row["id"], {"node_id": target, "visit": seen.get(row["id"], 0) + 1,
                                        "wake_at": now, "waiting_until": None, "waiting_for": None,
                                        "event_seen": False, "attempts": 0}))
        moved[(found["id"], target)] = [r["id"] for r in rows]
    _update_each(conn, changes)
    return moved


def _update_each(conn: Connection, changes: list[tuple[int, dict]]) -> None:
    """UPDATE enrollments: one statement per set of equal values (usually one or two per
    batch), or one executemany when the values differ from person to person."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for enrollment_id, values in changes:
        groups[tuple(sorted(values.items()))].append(enrollment_id)
    if len(groups) > _MANY_GROUPS and len({tuple(sorted(v)) for _, v in changes}) == 1:
        names = sorted(changes[0][1])
        conn.execute(update(enrollment_rows).where(enrollment_rows.c.id == bindparam("b_id")).values(
            {name: bindparam(f"b_{name}") for name in names}),
            [{"b_id": i, **{f"b_{k}": v for k, v in values.items()}} for i, values in changes])
        return
    for key, ids in groups.items():
        for chunk in db.chunked(ids, CHUNK):
            conn.execute(update(enrollment_rows).where(enrollment_rows.c.id.in_(chunk)).values(dict(key)))
