"""Workflow operations: drafts, publishing immutable versions, pause, archive, manual
enrollment. The only code that writes workflows and workflow_versions."""
from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from altkraft_onprem import db
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.campaigns import occurrences
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, Forbidden, NotFound, ServiceError, Term

from . import backfill, bulk, interest, scheduled, segment_watch, validate
from . import enrollment as enrollments
from .definition import dump
from .webhooks import new_secret
from .workflow_models import enrollments as enrollment_rows
from .workflow_models import steps, workflow_versions, workflows

MAX_DRAFT_BYTES = 1_000_000
MAX_MANUAL = 100_000


def _clean_draft(raw) -> tuple[str, dict]:
    if not isinstance(raw, dict):
        raise ServiceError("a workflow is a JSON object", "workflow")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ServiceError("a name of 1 to 200 characters is required", "name")
    if len(json.dumps(raw, default=str)) > MAX_DRAFT_BYTES:
        raise ServiceError("the workflow is larger than 1 MB", "workflow")
    return name.strip(), raw


def _changed(conn: Connection) -> None:
    interest.invalidate()
    db.after_commit(conn, "automation.interest", interest.invalidate)


def create(conn: Connection, actor: Actor, raw: dict) -> int:
    """A draft (checked in full only when published)."""
    name, draft = _clean_draft(raw)
    now = utcnow()
    workflow_id = conn.execute(insert(workflows).values(
        name=name, state="draft", draft=draft, created_at=now, created_by=actor.label[:320],
        updated_at=now, signing_secret=new_secret()).returning(workflows.c.id)).scalar_one()
    record(conn, actor, "workflow.create", "workflow", workflow_id, name=name)
    return workflow_id


def rotate_signing_secret(conn: Connection, actor: Actor, workflow_id: int) -> str:
    """A new secret for the workflow's HTTP requests (shown this once); the previous one keeps
    signing alongside until the next rotation."""
    current = conn.execute(select(workflows.c.signing_secret).where(
        workflows.c.id == workflow_id)).first()
    if current is None:
        raise NotFound("workflow %(workflow_id)s does not exist", workflow_id=workflow_id)
    secret = new_secret()
    conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(
        signing_secret=secret, previous_signing_secret=current.signing_secret))
    record(conn, actor, "workflow.signing_secret", "workflow", workflow_id)
    return secret


def update_draft(conn: Connection, actor: Actor, workflow_id: int, raw: dict) -> None:
    current = get(conn, workflow_id)
    if current["state"] == "archived":
        raise Conflict("an archived workflow cannot be changed")
    name, draft = _clean_draft(raw)
    conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(
        name=name, draft=draft, updated_at=utcnow()))
    record(conn, actor, "workflow.update", "workflow", workflow_id, name=name)


def get(conn: Connection, workflow_id: int) -> dict[str, Any]:
    row = conn.execute(select(workflows).where(workflows.c.id == workflow_id)).mappings().first()
    if row is None:
        raise NotFound("workflow %(workflow_id)s does not exist", workflow_id=workflow_id)
    item = {k: v for k, v in row.items() if k not in ("signing_secret", "previous_signing_secret")}
    item["version"] = None
    if row["version_id"] is not None:
        item["version"] = conn.execute(select(workflow_versions.c.number).where(
            workflow_versions.c.id == row["version_id"])).scalar()
    return item


def list_workflows(conn: Connection) -> list[dict[str, Any]]:
    ids = conn.execute(select(workflows.c.id).order_by(workflows.c.id.desc())).scalars()
    return [get(conn, workflow_id) for workflow_id in ids]


def get_version(conn: Connection, version_id: int) -> dict[str, Any]:
    row = conn.execute(select(workflow_versions).where(
        workflow_versions.c.id == version_id)).mappings().first()
    if row is None:
        raise NotFound("workflow version %(version_id)s does not exist", version_id=version_id)
    return dict(row)


def publish(conn: Connection, actor: Actor, workflow_id: int,
            node_map: dict[str, str] | None = None, wake=None) -> dict[str, Any]:
    """Checks the draft and makes it the next immutable version, now active. People inside
    stay on their version, unless `node_map` ({old node: new node}) moves them onto this one.
    A workflow that becomes active takes in its backfill (entry.backfill). A workflow that
    sends email needs campaigns:send besides automation:write."""
    current = get(conn, workflow_id)
    if current["state"] == "archived":
        raise Conflict("an archived workflow cannot be published")
    definition = validate.check(conn, current["draft"], workflow_id)
    sends = [n for n in definition.graph.nodes if n.type == "send_email"]
    if sends and not actor.can("campaigns:send"):
        raise Forbidden("this workflow sends email (node %(id)s): publishing it also needs the "
                        "campaigns:send permission", id=sends[0].id)
    stored = dump(definition)
    number = (conn.execute(select(func.max(workflow_versions.c.number)).where(
        workflow_versions.c.workflow_id == workflow_id)).scalar() or 0) + 1
    campaigns = {node.id: occurrences.create_for_node(
        conn, actor, workflow_id=workflow_id, name=f"{definition.name} v{number} · {node.name or node.id}",
        message_id=node.config.message_id, from_email=node.config.from_email,
        from_name=node.config.from_name, utm=node.config.utm) for node in sends}
    version_id = conn.execute(insert(workflow_versions).values(
        workflow_id=workflow_id, number=number, definition=stored, campaigns=campaigns,
        published_at=utcnow(), published_by=actor.label[:320])
        .returning(workflow_versions.c.id)).scalar_one()
    moved = _move_people(conn, workflow_id, version_id, stored, node_map) if node_map else 0
    if moved and wake is not None:          # they go on at their new step soon after the commit
        db.after_commit(conn, "automation.moved", wake)
    conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(
        state="active", version_id=version_id, name=definition.name, updated_at=utcnow()))
    was_active = current["state"] == "active"
    _activate(conn, workflow_id, stored, was_active=was_active)
    backfilled = 0 if was_active else backfill.run(
        conn, {**current, "state": "active"}, {"id": version_id, "definition": stored}, wake=wake)
    record(conn, actor, "workflow.publish", "workflow", workflow_id, version=number,
           moved=moved, sends=len(sends), backfilled=backfilled)
    _changed(conn)
    return {"version": number, "version_id": version_id, "moved": moved, "backfilled": backfilled}


def _activate(conn: Connection, workflow_id: int, stored: dict, *, was_active: bool) -> None:
    """What a trigger needs from the moment it listens: a clock trigger looks forward from
    now, a watched segment's members are noted (they have not *entered* it), and whoever is
    inside and in the exit segment leaves; HTTP nodes have a secret to sign with."""
    conn.execute(update(workflows).where(workflows.c.id == workflow_id,
                                         workflows.c.signing_secret.is_(None)).values(
        signing_secret=new_secret()))          # a workflow from before secrets existed
    scheduled.mark_activation(conn, workflow_id, stored["trigger"]["type"], was_active)
    segment_watch.start_watching(conn, segment_watch.watched_by(stored))
    exit_segment = stored.get("entry", {}).get("exit_segment_id")
    if exit_segment is not None:
        segment_watch.exit_members(conn, workflow_id, exit_segment)


def _move_people(conn: Connection, workflow_id: int, version_id: int, stored: dict,
                 node_map: dict[str, str]) -> int:
    known = {n["id"] for n in stored["graph"]["nodes"]}
    unknown = sorted(v for v in node_map.values() if v not in known)
    if unknown:
        # A node the request names that does not exist: 404 naming the field, as for any
        # id in a body (the API turns the draft's own errors into 409).
        raise NotFound("node_map names node %(unknown)s, which the new version lacks",
                       "node_map", unknown=unknown[0])
    moved = 0
    for old, new in node_map.items():
        # The visit of the new node: one more than the steps the person already took at a
        # node of that id (under an earlier version): a step's key stays unique.
        visits = select(func.count()).select_from(steps).where(
            steps.c.enrollment_id == enrollment_rows.c.id, steps.c.node_id == new
        ).scalar_subquery()
        moved += conn.execute(update(enrollment_rows).where(
            enrollment_rows.c.workflow_id == workflow_id, enrollment_rows.c.state == "active",
            enrollment_rows.c.version_id != version_id,         # each person moves once
            enrollment_rows.c.node_id == old).values(
            version_id=version_id, node_id=new, visit=visits + 1, waiting_until=None,
            waiting_for=None, event_seen=False, wake_at=utcnow())).rowcount
    return moved


def pause(conn: Connection, actor: Actor, workflow_id: int) -> str:
    """Nobody enters and nobody moves on until it is published again."""
    current = get(conn, workflow_id)
    if current["state"] != "active":
        raise Conflict("a %(state)s workflow cannot be paused", state=Term(current["state"]))
    conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(
        state="paused", updated_at=utcnow()))
    record(conn, actor, "workflow.pause", "workflow", workflow_id)
    _changed(conn)
    return "paused"


def archive(conn: Connection, actor: Actor, workflow_id: int, wake=None) -> int:
    """Archived: everyone inside leaves, its send nodes' queued emails are cancelled."""
    get(conn, workflow_id)
    conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(
        state="archived", updated_at=utcnow()))
    ids = list(conn.execute(select(enrollment_rows.c.subscriber_id).where(
        enrollment_rows.c.workflow_id == workflow_id,
        enrollment_rows.c.state.in_(("active", "parked")))).scalars())
    left = enrollments.exit_people(conn, ids, "the workflow was archived", [workflow_id],
                                   wake=wake) if ids else 0
    occurrences.stop_for_workflow(conn, workflow_id)
    record(conn, actor, "workflow.archive", "workflow", workflow_id, exited=left)
    _changed(conn)
    return left


def resume(conn: Connection, actor: Actor, workflow_id: int, enrollment_ids=None,
           wake=None) -> int:
    """Parked enrollments (a step failed, an HTTP request node gave up without a failure
    branch) go on at the node where they stopped, which is tried afresh (an HTTP node gets
    its attempts again). None: every parked enrollment of the workflow. Returns how many."""
    current = get(conn, workflow_id)
    if current["state"] == "archived":
        raise Conflict("an archived workflow cannot be changed")
    where = [enrollment_rows.c.workflow_id == workflow_id, enrollment_rows.c.state == "parked"]
    if enrollment_ids is not None:
        where = [db.lookup(conn, enrollment_rows.c.id, sorted({int(i) for i in enrollment_ids}), *where)]
    resumed = conn.execute(update(enrollment_rows).where(*where).values(
        state="active", wake_at=utcnow(), attempts=0, end_reason=None, lease_owner=None,
        lease_until=None)).rowcount
    record(conn, actor, "workflow.resume", "workflow", workflow_id, resumed=resumed)
    if resumed and wake is not None:
        db.after_commit(conn, "automation.resume", wake)
    return resumed


def enroll(conn: Connection, actor: Actor, workflow_id: int, *, subscriber_ids=None,
           segment_id: int | None = None, test: bool = False, wake=None) -> dict[str, int]:
    """Manual or bulk enrollment (the entry filter and re-entry policy apply; a test
    enrollment runs with waits compressed, even in a paused workflow). A segment of more than
    MAX_MANUAL people is enrolled in the background, a chunk per transaction ("queued")."""
    current = get(conn, workflow_id)
    if current["version_id"] is None or (current["state"] != "active" and not test):
        raise Conflict("a %(state)s workflow takes no one: publish it first", state=Term(current["state"]))
    if (subscriber_ids is None) == (segment_id is None):
        raise ServiceError("give either subscriber_ids or segment_id", "subscriber_ids")
    if segment_id is not None:
        subscriber_ids, asked = bulk.segment_members(conn, segment_id, MAX_MANUAL)
        if asked > MAX_MANUAL:          # a chunk per transaction in the background
            bulk.request(conn, workflow_id, segment_id, test=test, by=actor.label, asked=asked,
                         wake=wake)
            record(conn, actor, "workflow.enroll", "workflow", workflow_id, asked=asked,
                   entered=0, segment_id=segment_id, test=test, queued=True)
            return {"asked": asked, "entered": 0, "queued": True}
    ids = sorted({int(i) for i in subscriber_ids})
    if len(ids) > MAX_MANUAL:
        raise ServiceError("at most %(max_manual)s people at once", "subscriber_ids", max_manual=MAX_MANUAL)
    version = get_version(conn, current["version_id"])
    request = uuid.uuid4().hex[:12]
    event = {"manual": True, "by": actor.label}
    entered = len(enrollments.enter_many(conn, current, version, [
        enrollments.Entry(subscriber_id, f"manual:{request}:{subscriber_id}", event)
        for subscriber_id in ids], test=test, check=not test, wake=wake))
    record(conn, actor, "workflow.enroll", "workflow", workflow_id, asked=len(ids),
           entered=entered, segment_id=segment_id, test=test)
    return {"asked": len(ids), "entered": entered, "queued": False}
