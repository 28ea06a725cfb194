"""db.insert_many and db.among on the real database: the rows read back as an ordinary
INSERT would have written them (UTC times, JSON, NULLs, shared value objects), and `among`
matches exactly the given values."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscriber_activity, subscribers
from altkraft_onprem.automation import workflows
from altkraft_onprem.automation.workflow_models import enrollments, steps
from tests.automation.helpers import ACTOR, chain, person


def _person(conn, email: str) -> int:
    now = datetime.now(UTC)
    return conn.execute(insert(subscribers).values(
        email=email, email_domain="example.com", state="active", custom={}, source="api",
        created_at=now, updated_at=now).returning(subscribers.c.id)).scalar_one()


def test_insert_many_writes_what_an_ordinary_insert_writes(env):
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    with db.write(env.engine) as conn:
        people = [_person(conn, f"bulk{i}@example.com") for i in range(3)]
        db.insert_many(conn, subscriber_activity, [
            {"subscriber_id": sid, "at": moment + timedelta(minutes=i), "kind": "bulk-test",
             "details": f'{{"n": {i}}}'} for i, sid in enumerate(people)])
        conn.execute(insert(subscriber_activity).values(
            subscriber_id=people[0], at=moment, kind="bulk-ordinary", details='{"n": 0}'))
    with db.read(env.engine) as conn:
        written = conn.execute(select(subscriber_activity.c.subscriber_id, subscriber_activity.c.at,
                                      subscriber_activity.c.details).where(
            subscriber_activity.c.kind == "bulk-test").order_by(subscriber_activity.c.id)).all()
        ordinary = conn.execute(select(subscriber_activity.c.at).where(
            subscriber_activity.c.kind == "bulk-ordinary")).scalar_one()
        # the same stored form: a comparison in SQL finds both
        same = conn.execute(select(subscriber_activity.c.kind).where(
            subscriber_activity.c.at == moment,
            subscriber_activity.c.kind.in_(("bulk-test", "bulk-ordinary")))).scalars().all()
    assert [(r.subscriber_id, r.at, r.details) for r in written] == [
        (sid, moment + timedelta(minutes=i), f'{{"n": {i}}}') for i, sid in enumerate(people)]
    assert ordinary == moment and sorted(same) == ["bulk-ordinary", "bulk-test"]


def test_insert_many_json_and_nulls_and_among(env):
    moment = datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    shared = {"until": moment.isoformat(), "city": "Москва"}
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(("g", "goal", {"name": "x"})))
    subscriber_id = person(env)
    with db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
        workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=[subscriber_id])
        enrollment_id = conn.execute(select(enrollments.c.id).where(
            enrollments.c.workflow_id == workflow_id)).scalar_one()
        db.insert_many(conn, steps, [
            {"enrollment_id": enrollment_id, "workflow_id": workflow_id, "node_id": f"n{i}",
             "visit": 1, "branch": None if i % 2 else "yes", "detail": shared, "at": moment}
            for i in range(4)])
    with db.read(env.engine) as conn:
        rows = conn.execute(select(steps.c.node_id, steps.c.branch, steps.c.detail, steps.c.at)
                            .where(steps.c.enrollment_id == enrollment_id,
                                   db.among(conn, steps.c.node_id, ["n0", "n3", "elsewhere"]))
                            .order_by(steps.c.node_id)).all()
        none = conn.execute(select(steps.c.id).where(db.among(conn, steps.c.id, []))).all()
    assert [tuple(r) for r in rows] == [("n0", "yes", shared, moment), ("n3", None, shared, moment)]
    assert none == []


def test_lookup_finds_by_the_key_and_filters_the_rest(env):
    """SQLite without statistics would scan the index on `state` (every active enrollment)
    instead of looking the given ids up: lookup keeps the filters off the indexes there."""
    subscriber_id = person(env)
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(("w", "wait", {"duration": "P1D"})))
        workflows.publish(conn, ACTOR, workflow_id)
        workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=[subscriber_id])
        enrollment_id = conn.execute(select(enrollments.c.id).where(
            enrollments.c.workflow_id == workflow_id)).scalar_one()
    query = select(enrollments.c.id)
    with db.read(env.engine) as conn:
        found = conn.execute(query.where(db.lookup(
            conn, enrollments.c.id, [enrollment_id, 10**9], enrollments.c.state == "active",
            enrollments.c.workflow_id == workflow_id))).scalars().all()
        other = conn.execute(query.where(db.lookup(
            conn, enrollments.c.id, [enrollment_id], enrollments.c.state == "done"))).scalars().all()
        plain = conn.execute(query.where(db.lookup(conn, enrollments.c.id, [enrollment_id]))).scalars().all()
        if conn.dialect.name == "sqlite":
            statement = query.where(db.lookup(conn, enrollments.c.id, [enrollment_id],
                                              enrollments.c.state == "active"))
            compiled = statement.compile(dialect=conn.dialect)
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params[name]
                                                        for name in compiled.positiontup)))
            assert "PRIMARY KEY" in plan and "ix_workflow_enrollments_due" not in plan, plan
    assert found == [enrollment_id] and other == [] and plain == [enrollment_id]


def test_insert_many_fills_constant_defaults_and_names_what_it_cannot(env):
    """A column left out gets its constant Python-side default, as an ordinary INSERT gives
    it; one whose default is computed, or rows whose keys differ, are refused by name."""
    from altkraft_onprem.access.models import audit_log

    moment = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    with db.write(env.engine) as conn:
        db.insert_many(conn, audit_log, [{"at": moment, "actor": "bulk", "action": f"bulk.defaults{i}"}
                                         for i in range(2)])
        conn.execute(insert(audit_log).values(at=moment, actor="bulk", action="bulk.ordinary"))
    with db.read(env.engine) as conn:
        written = conn.execute(select(audit_log.c.action, audit_log.c.ip, audit_log.c.target_type,
                                      audit_log.c.target_id, audit_log.c.details).where(
            audit_log.c.actor == "bulk").order_by(audit_log.c.id)).all()
    assert [tuple(r) for r in written] == [
        ("bulk.defaults0", "", "", "", "{}"), ("bulk.defaults1", "", "", "", "{}"),
        ("bulk.ordinary", "", "", "", "{}")]
    now = datetime.now(UTC)
    person_row = {"email": "nocustom@example.com", "email_domain": "example.com", "state": "active",
                  "source": "api", "created_at": now, "updated_at": now}
    with db.write(env.engine) as conn, pytest.raises(ValueError, match="give custom in every row"):
        db.insert_many(conn, subscribers, [person_row])      # custom's default is dict()
    with db.write(env.engine) as conn, pytest.raises(ValueError, match="row 1 has the keys"):
        db.insert_many(conn, audit_log, [{"at": moment, "actor": "bulk", "action": "a"},
                                         {"at": moment, "actor": "bulk", "action": "b", "ip": "x"}])
    with db.write(env.engine) as conn, pytest.raises(ValueError, match="row 1 has the keys"):
        db.insert_many(conn, audit_log, [{"at": moment, "actor": "bulk", "action": "a"},
                                         {"at": moment, "actor": "bulk", "ip": "x"}])
    with db.write(env.engine) as conn, pytest.raises(ValueError, match="no column colour"):
        db.insert_many(conn, audit_log, [{"at": moment, "actor": "bulk", "action": "a",
                                          "colour": "red"}])
