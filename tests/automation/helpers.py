"""Building workflows for tests: people, lists, a workflow JSON from a chain of nodes."""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import lists, subscribers
from altkraft_onprem.automation import jobs, runner, workflows
from altkraft_onprem.automation.workflow_models import enrollments, steps
from altkraft_onprem.db.types import utcnow

ACTOR = system_actor("test")


def uid() -> str:
    return uuid.uuid4().hex[:8]


def person(env, list_ids=(), **fields) -> int:
    with db.write(env.engine) as conn:
        return subscribers.create_subscriber(conn, ACTOR, {"email": f"p-{uid()}@example.com", **fields},
                                             list_ids=list_ids)


def a_list(env) -> int:
    with db.write(env.engine) as conn:
        return lists.create_list(conn, ACTOR, f"list-{uid()}")


def chain(*nodes: tuple[str, str, dict], trigger=None, edges=None, **extra) -> dict:
    """A workflow whose nodes (id, type, config) follow each other, unless `edges` is given."""
    if edges is None:
        edges = [{"from": a[0], "to": b[0]} for a, b in zip(nodes, nodes[1:], strict=False)]
    return {"name": f"wf-{uid()}", "trigger": trigger or {"type": "manual"},
            "graph": {"start": nodes[0][0], "edges": edges,
                      "nodes": [{"id": i, "type": t, "config": c} for i, t, c in nodes]}, **extra}


def published(env, definition: dict, actor=ACTOR) -> int:
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, actor, definition)
        workflows.publish(conn, actor, workflow_id)
    return workflow_id


def enroll(env, workflow_id: int, *subscriber_ids: int, test: bool = False) -> dict:
    with db.write(env.engine) as conn:
        return workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=list(subscriber_ids),
                                test=test, wake=jobs.wake)


def enrollment_of(env, workflow_id: int, subscriber_id: int) -> dict:
    with db.read(env.engine) as conn:
        return dict(conn.execute(select(enrollments).where(
            enrollments.c.workflow_id == workflow_id, enrollments.c.subscriber_id == subscriber_id)
            .order_by(enrollments.c.id.desc())).mappings().first())


def steps_of(env, enrollment_id: int) -> list[tuple[str, int, str | None]]:
    with db.read(env.engine) as conn:
        return [(r.node_id, r.visit, r.branch) for r in conn.execute(select(steps).where(
            steps.c.enrollment_id == enrollment_id).order_by(steps.c.id))]


def fields_of(env, subscriber_id: int) -> dict:
    with db.read(env.engine) as conn:
        return subscribers.get_subscriber(conn, subscriber_id)


def run_later(env, hours: float) -> int:
    """The runner as it would run `hours` from now (waits that are due by then go on)."""
    with env.app.app_context():
        return runner.run_due(env.engine, env.settings, "test-runner", wake=jobs.wake,
                              now=utcnow() + timedelta(hours=hours))


def entered(env, workflow_id: int) -> list[tuple[int, dict]]:
    """(subscriber, the event they entered with) of each enrollment, oldest first."""
    with db.read(env.engine) as conn:
        return [(r.subscriber_id, r.event) for r in conn.execute(select(
            enrollments.c.subscriber_id, enrollments.c.event).where(
            enrollments.c.workflow_id == workflow_id).order_by(enrollments.c.id))]


def people_in(env, workflow_id: int) -> list[int]:
    return [subscriber_id for subscriber_id, _ in entered(env, workflow_id)]
