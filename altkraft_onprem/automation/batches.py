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

from sqlalchemy import Connection, Engine, and_, bindparam, select, update

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


# What executors read of an enrollment; `event` (JSON) only for the nodes that show it.
_COLUMNS = ("id", "workflow_id", "version_id", "subscriber_id", "node_id", "visit",
            "waiting_until", "waiting_for", "event_seen", "attempts", "test")
NEEDS_EVENT = {"send_email", "notify", "webhook", "enroll"}


def leased(conn: Connection, ids: list[int], owner: str, at: tuple[int, str], *,
           lock: bool = True) -> list[dict]:
    """Those of `ids` still leased to `owner`, active and at `at` (locked on Postgres), each
    with `present`: the person is still there (not deleted, not in the trash)."""
    node = version(conn, at[0])["nodes"].get(at[1])
    columns = [enrollment_rows.c[name] for name in _COLUMNS]
    if node is not None and node["type"] in NEEDS_EVENT:
        columns.append(enrollment_rows.c.event)
    present = and_(subscribers.c.id.is_not(None), subscribers.c.deleted_at.is_(None)).label("present")
    found: list[dict] = []
    for chunk in db.chunked(ids, CHUNK):
        query = select(*columns, present).select_from(enrollment_rows.join(
            subscribers, subscribers.c.id == enrollment_rows.c.subscriber_id, isouter=True)).where(
            db.lookup(conn, enrollment_rows.c.id, chunk, enrollment_rows.c.lease_owner == owner,
                      enrollment_rows.c.state == "active", enrollment_rows.c.version_id == at[0],
                      enrollment_rows.c.node_id == at[1])).order_by(enrollment_rows.c.id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update(of=enrollment_rows)
        result = conn.execute(query)
        names = list(result.keys())
        found += [dict(zip(names, row, strict=True)) for row in result.all()]
    return found


def execute(conn: Connection, settings, rows: list[dict], now: datetime, wake,
            answers: dict) -> Result:
    found = version(conn, rows[0]["version_id"])
    node = found["nodes"].get(rows[0]["node_id"])
    if node is None:
        enrollments.end_many(conn, rows, "exited", f"node {rows[0]['node_id']} is not in version "
                             f"{found['number']}", now, wake=wake)
        return Result()
    rows = _leave(conn, rows, {r["subscriber_id"] for r in rows if r["present"]}, False,
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


def _present(conn: Connection, subscriber_ids: list[int], segment_id: int) -> set[int]:
    """Who of these people is in the segment."""
    where = segment_service.segment_expr(conn, segment_id)
    found: set[int] = set()
    for chunk in db.chunked(sorted(set(subscriber_ids)), CHUNK):
        found.update(conn.execute(select(subscribers.c.id).where(
            db.lookup(conn, subscribers.c.id, chunk, where))).scalars())
    return found


def _leave(conn: Connection, rows: list[dict], found: set[int], leave_found: bool, reason: str,
           now: datetime, wake) -> list[dict]:
    """Ends the enrollments of those in `found` (leave_found) or not in it; returns the rest."""
    leaving = [r for r in rows if (r["subscriber_id"] in found) == leave_found]
    if leaving:
        enrollments.end_many(conn, leaving, "exited", reason, now, wake=wake)
    return [r for r in rows if (r["subscriber_id"] in found) != leave_found]


_WAIT = ("wake_at", "waiting_until", "waiting_for", "attempts", "lease_owner", "lease_until")
_PARK = ("state", "wake_at", "end_reason", "lease_owner", "lease_until")
_MOVE = ("node_id", "visit", "wake_at", "waiting_until", "waiting_for", "event_seen", "attempts")
_NO_DETAIL: dict = {}          # one object: its JSON is made once per batch


def _apply(conn: Connection, found: dict, node: dict, pairs: list[tuple[dict, Outcome]],
           now: datetime, wake) -> Result:
    """Waits, parks, step rows, ends and moves of one batch, in bulk."""
    waits: dict[tuple, list[int]] = defaultdict(list)
    parks: dict[tuple, list[int]] = defaultdict(list)
    stepped: list[tuple[dict, Outcome]] = []
    for row, outcome in pairs:
        detail = outcome.detail
        if outcome.wait_until is not None:
            waits[(outcome.wake_at or outcome.wait_until, outcome.wait_until, detail.get("waiting_for"),
                   detail.get("attempt", row["attempts"]), None, None)].append(row["id"])
            continue
        if detail.get("failed") and (node["id"], "failure") not in found["edges"]:
            detail["park"] = f"node {node['id']} failed: {detail.get('error')}"
        if detail.get("park"):
            parks[("parked", None, detail["park"][:1000], None, None)].append(row["id"])
            continue
        stepped.append((row, outcome))
    _update_groups(conn, _WAIT, waits)
    _update_groups(conn, _PARK, parks)
    if not stepped:
        return Result()
    node_id = node["id"]
    db.insert_many(conn, steps, [
        {"enrollment_id": row["id"], "workflow_id": row["workflow_id"], "node_id": node_id,
         "visit": row["visit"], "branch": outcome.branch, "detail": outcome.detail or _NO_DETAIL,
         "at": now} for row, outcome in stepped])
    return Result(taken=len(stepped), moved=_move_on(conn, found, node, stepped, now, wake))


def _move_on(conn: Connection, found: dict, node: dict, stepped: list[tuple[dict, Outcome]],
             now: datetime, wake) -> dict[tuple[int, str], list[int]]:
    ends: dict[tuple[str, str], list[dict]] = defaultdict(list)
    following: dict[str, list[int]] = defaultdict(list)
    edges = found["edges"]
    for row, outcome in stepped:
        if outcome.end is not None:
            ends[("exited", outcome.end)].append(row)
            continue
        target = outcome.jump or edges.get((node["id"], outcome.branch))
        if target is None:
            ends[("done", "reached the end")].append(row)
        else:
            following[target].append(row["id"])
    for (state, reason), rows in ends.items():
        enrollments.end_many(conn, rows, state, reason, now, wake=wake)
    moves: dict[tuple, list[int]] = defaultdict(list)
    for target, ids in following.items():
        # The visit of the next node: one more than the steps already taken there (written
        # above for this node, so a goto to itself counts this step too).
        seen = count_by(conn, lambda chunk, target=target: (
            db.among(conn, steps.c.enrollment_id, chunk), steps.c.node_id == target),
            steps.c.enrollment_id, ids)
        for enrollment_id in ids:
            moves[(target, seen.get(enrollment_id, 0) + 1, now, None, None, False, 0)].append(
                enrollment_id)
    _update_groups(conn, _MOVE, moves)
    return {(found["id"], target): ids for target, ids in following.items()}


def _update_groups(conn: Connection, names: tuple[str, ...], groups: dict[tuple, list[int]]) -> None:
    """UPDATE enrollments SET `names` = each group's values for the group's ids: one
    statement per group (usually one or two per batch), or one executemany when the values
    differ from person to person."""
    if len(groups) > _MANY_GROUPS:
        conn.execute(update(enrollment_rows).where(enrollment_rows.c.id == bindparam("b_id")).values(
            {name: bindparam(f"b_{name}") for name in names}),
            [{"b_id": i, **{f"b_{name}": value for name, value in zip(names, values, strict=True)}}
             for values, ids in groups.items() for i in ids])
        return
    for values, ids in groups.items():
        for chunk in db.chunked(ids, CHUNK):
            conn.execute(update(enrollment_rows).where(db.among(conn, enrollment_rows.c.id, chunk))
                         .values(dict(zip(names, values, strict=True))))
