"""segment_entered / segment_left through the real service: the members at publish are the
baseline (they did not enter), each later check enrolls who came in or went out once, and an
exit segment takes people out of a workflow (at the check, and at their next step)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience import segments, subscribers
from altkraft_onprem.automation import jobs, segment_watch
from altkraft_onprem.db.types import utcnow

from .helpers import (
    ACTOR,
    chain,
    enroll,
    enrollment_of,
    people_in,
    person,
    published,
    run_later,
    uid,
)


def city_segment(env, city: str) -> int:
    with db.write(env.engine) as conn:
        return segments.create_segment(conn, ACTOR, f"seg-{uid()}", {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": city}]})


def move(env, subscriber_id: int, city: str) -> None:
    with db.write(env.engine) as conn:
        subscribers.update_subscriber(conn, ACTOR, subscriber_id, {"city": city})


def check(env, minutes: float) -> int:
    """The minute tick's segment check as it would run `minutes` from now (then the runner)."""
    with env.app.app_context():
        entered = segment_watch.run_due(env.engine, env.settings, wake=jobs.wake,
                                        now=utcnow() + timedelta(minutes=minutes))
    run_later(env, minutes / 60)
    return entered


def test_people_who_enter_a_segment_enroll_once_per_entry(env):
    city = f"In-{uid()}"
    segment_id = city_segment(env, city)
    already = person(env, city=city)
    workflow_id = published(env, chain(("g", "goal", {"name": "joined"}), trigger={
        "type": "segment_entered", "segment_id": segment_id}, entry={"reentry": "every_time"}))
    newcomer = person(env, city="Elsewhere")
    move(env, newcomer, city)
    check(env, 6)
    check(env, 12)                                  # looked at again: nothing new
    assert people_in(env, workflow_id) == [newcomer]
    assert enrollment_of(env, workflow_id, newcomer)["event"] == {"segment_id": segment_id}
    move(env, newcomer, "Away")
    check(env, 18)
    move(env, newcomer, city)
    check(env, 24)
    assert people_in(env, workflow_id) == [newcomer, newcomer]
    assert already not in people_in(env, workflow_id)


def test_people_who_leave_a_segment_enroll_in_its_left_workflow(env):
    city = f"Out-{uid()}"
    segment_id = city_segment(env, city)
    stays, leaves = person(env, city=city), person(env, city=city)
    workflow_id = published(env, chain(("g", "goal", {"name": "left"}), trigger={
        "type": "segment_left", "segment_id": segment_id}))
    move(env, leaves, "Somewhere else")
    check(env, 6)
    assert people_in(env, workflow_id) == [leaves]
    assert stays not in people_in(env, workflow_id)


def test_an_exit_segment_takes_people_out_at_the_check_and_at_their_next_step(env):
    gone = f"Gone-{uid()}"
    exit_segment = city_segment(env, gone)
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"}),
                                       ("f", "update_fields", {"fields": {"company": "stayed"}}),
                                       entry={"exit_segment_id": exit_segment}))
    stays, checked, stepped = person(env), person(env), person(env)
    enroll(env, workflow_id, stays, checked, stepped)
    move(env, checked, gone)
    check(env, 6)
    found = enrollment_of(env, workflow_id, checked)
    assert found["state"] == "exited" and f"exit segment {exit_segment}" in found["end_reason"]
    move(env, stepped, gone)                        # no check in between: the step sees it
    run_later(env, 25)
    assert enrollment_of(env, workflow_id, stepped)["state"] == "exited"
    assert enrollment_of(env, workflow_id, stays)["state"] == "done"


def test_a_segment_no_workflow_watches_any_more_is_forgotten(env):
    segment_id = city_segment(env, f"Drop-{uid()}")
    workflow_id = published(env, chain(("g", "goal", {"name": "x"}), trigger={
        "type": "segment_entered", "segment_id": segment_id}))
    from altkraft_onprem.automation import workflows
    from altkraft_onprem.automation.workflow_models import segment_watch as watch_rows
    with db.write(env.engine) as conn:
        workflows.pause(conn, ACTOR, workflow_id)
    check(env, 6)
    with db.read(env.engine) as conn:
        assert conn.execute(select(watch_rows.c.segment_id).where(
            watch_rows.c.segment_id == segment_id)).first() is None
