"""The runner in batches: one claim leases the due people at one node, a batch moves them
together, one person's failure parks only them, and a dispatch batch keeps the order of its
rows (an entry before a later exit)."""
from __future__ import annotations

from sqlalchemy import select, text

from altkraft_onprem import db
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience import subscribers
from altkraft_onprem.automation import runner, workflows
from altkraft_onprem.automation.workflow_models import enrollments, steps
from altkraft_onprem.db.types import utcnow

from .helpers import ACTOR, a_list, chain, enrollment_of, fields_of, person, published, run_later


def test_one_claim_leases_the_due_people_at_the_oldest_ones_node(env):
    workflow_id = published(env, chain(("w", "wait", {"duration": "PT1H"}),
                                       ("f", "update_fields", {"fields": {"company": "claimed"}})))
    people = [person(env) for _ in range(3)]
    with db.write(env.engine) as conn:          # enrolled without a wake-up: nothing ran yet
        workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=people)
    with db.write(env.engine) as conn:
        place, ids = runner.claim(conn, "claimer", settings=env.settings)
    with db.read(env.engine) as conn:
        mine = conn.execute(select(enrollments.c.id, enrollments.c.node_id).where(
            enrollments.c.lease_owner == "claimer")).all()
    assert place[1] == "w" and len(ids) == 3
    assert sorted(i for i, _ in mine) == ids and {n for _, n in mine} == {"w"}
    with db.write(env.engine) as conn:
        conn.execute(enrollments.update().where(enrollments.c.id.in_(ids)).values(
            lease_owner=None, lease_until=None))


def test_a_batch_takes_everyone_through_and_records_each_step_once(env):
    with db.write(env.engine) as conn:
        if "batch_points" not in field_service.definitions(conn):
            field_service.create_field(conn, ACTOR, "batch_points", "Points", "number")
    workflow_id = published(env, chain(
        ("c", "condition", {"conditions": {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": "Batch"}]}}),
        ("y", "update_fields", {"fields": {"company": "yes", "custom.batch_points": 3}}),
        ("n", "goal", {"name": "other"}),
        edges=[{"from": "c", "to": "y", "branch": "yes"}, {"from": "c", "to": "n", "branch": "no"}]))
    inside = [person(env, city="Batch") for _ in range(4)]
    outside = [person(env, city="Elsewhere") for _ in range(3)]
    with db.write(env.engine) as conn:
        workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=inside + outside)
    with env.app.app_context():
        assert runner.run_due(env.engine, env.settings, "batcher") == 7 * 2
    assert all(fields_of(env, i)["company"] == "yes" and fields_of(env, i)["custom"]["batch_points"] == 3
               for i in inside)
    assert all(fields_of(env, i)["company"] is None for i in outside)
    with db.read(env.engine) as conn:
        taken = conn.execute(select(steps.c.enrollment_id, steps.c.node_id, steps.c.visit).where(
            steps.c.workflow_id == workflow_id)).all()
        states = set(conn.execute(select(enrollments.c.state).where(
            enrollments.c.workflow_id == workflow_id)).scalars())
    assert len(taken) == len(set(taken)) == 14 and states == {"done"}


def _fail_updates_of(conn, subscriber_id: int) -> None:
    """A fault in the real database: updating this one person's row fails."""
    if conn.dialect.name == "sqlite":
        conn.execute(text(f"CREATE TRIGGER fail_one BEFORE UPDATE ON subscribers WHEN "
                          f"NEW.id = {subscriber_id} BEGIN SELECT RAISE(ABORT, 'boom'); END"))
    else:
        conn.execute(text("CREATE FUNCTION fail_one() RETURNS trigger AS $$ BEGIN "
                          "RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql"))
        conn.execute(text(f"CREATE TRIGGER fail_one BEFORE UPDATE ON subscribers FOR EACH ROW "
                          f"WHEN (NEW.id = {subscriber_id}) EXECUTE FUNCTION fail_one()"))


def _drop_fault(conn) -> None:
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER fail_one"))
    else:
        conn.execute(text("DROP TRIGGER fail_one ON subscribers"))
        conn.execute(text("DROP FUNCTION fail_one()"))


def test_one_failing_person_is_parked_and_the_rest_go_on(env):
    workflow_id = published(env, chain(("f", "update_fields", {"fields": {"company": "went on"}}),
                                       ("g", "goal", {"name": "after"})))
    people = [person(env) for _ in range(3)]
    with db.write(env.engine) as conn:
        _fail_updates_of(conn, people[1])
    try:
        with db.write(env.engine) as conn:
            workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=people)
        with env.app.app_context():
            runner.run_due(env.engine, env.settings, "isolator")
    finally:
        with db.write(env.engine) as conn:
            _drop_fault(conn)
    assert [fields_of(env, i)["company"] for i in people] == ["went on", None, "went on"]
    failed = enrollment_of(env, workflow_id, people[1])
    assert failed["state"] == "parked" and "node f failed" in failed["end_reason"]
    assert "boom" in failed["end_reason"] and failed["lease_owner"] is None
    assert {enrollment_of(env, workflow_id, i)["state"] for i in (people[0], people[2])} == {"done"}


def test_an_entry_and_a_later_exit_in_one_dispatch_keep_their_order(env):
    list_id = a_list(env)
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"}),
                                       trigger={"type": "list_joined", "list_id": list_id}))
    subscriber_id = person(env)
    with db.write(env.engine) as conn:      # joined, then unsubscribed: two rows, one batch
        subscribers.set_membership(conn, subscriber_id, list_id, "confirmed")
        subscribers.set_membership(conn, subscriber_id, list_id, "unsubscribed")
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "exited" and "unsubscribed" in found["end_reason"]


def test_many_waits_wake_together_at_their_own_times(env):
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"}),
                                       ("f", "update_fields", {"fields": {"company": "woke"}}),
                                       timezone="Europe/Moscow"))
    people = [person(env, timezone=zone) for zone in ("Asia/Tokyo", "America/New_York", None)]
    with db.write(env.engine) as conn:
        workflows.enroll(conn, ACTOR, workflow_id, subscriber_ids=people)
    with env.app.app_context():
        runner.run_due(env.engine, env.settings, "waiter", now=utcnow())
    waits = {enrollment_of(env, workflow_id, i)["waiting_until"] for i in people}
    assert len(waits) >= 1 and all(w is not None for w in waits)
    run_later(env, 25)
    assert all(fields_of(env, i)["company"] == "woke" for i in people)
