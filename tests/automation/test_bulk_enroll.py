"""A whole segment too big for one transaction is enrolled in the background, a chunk per
transaction: each chunk records how far it got, a replayed chunk enrolls no one twice, and a
workflow archived meanwhile stops it. (The limits are made small here: 3 people inline, chunks
of 2.)"""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.audience import segments
from altkraft_onprem.automation import bulk, workflows
from altkraft_onprem.automation.workflow_models import bulk_enrollments, enrollments
from tests.api.conftest import Api

from .helpers import ACTOR, chain, people_in, person, published, uid


@pytest.fixture(autouse=True)
def small_limits(monkeypatch):
    monkeypatch.setattr(workflows, "MAX_MANUAL", 3)
    monkeypatch.setattr(bulk, "CHUNK", 2)


def _segment(env, size: int) -> tuple[int, list[int]]:
    city = f"Bulk-{uid()}"
    people = [person(env, city=city) for _ in range(size)]
    with db.write(env.engine) as conn:
        segment_id = segments.create_segment(conn, ACTOR, f"bulk {city}", {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": city}]})
    return segment_id, people


def _requests(env, workflow_id: int) -> list[dict]:
    with db.read(env.engine) as conn:
        return [dict(r) for r in conn.execute(select(bulk_enrollments).where(
            bulk_enrollments.c.workflow_id == workflow_id)).mappings()]


def test_a_big_segment_is_enrolled_in_the_background_chunk_by_chunk(env):
    segment_id, people = _segment(env, 5)
    workflow_id = published(env, chain(("g", "goal", {"name": "bulk"})))
    api = Api(env.app.test_client(), env.token("Administrator"))
    answer = api("POST", f"/workflows/{workflow_id}/enroll", json={"segment_id": segment_id})
    assert answer.status_code == 202 and answer.get_json() == {"asked": 5, "entered": 0, "queued": True}
    assert sorted(people_in(env, workflow_id)) == people          # the wake-up did it all
    (request,) = _requests(env, workflow_id)
    assert request["entered"] == 5 and request["finished_at"] is not None
    assert request["after_id"] == people[-1]
    small = api("POST", f"/workflows/{workflow_id}/enroll", json={"subscriber_ids": people[:2]})
    assert small.get_json() == {"asked": 2, "entered": 0, "queued": False}      # once ever


def test_a_chunk_replayed_after_a_crash_enrolls_no_one_twice(env):
    segment_id, people = _segment(env, 5)
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"}),
                                       entry={"reentry": "every_time"}))
    with db.write(env.engine) as conn:      # no wake-up: the background work is ours to run
        assert workflows.enroll(conn, ACTOR, workflow_id, segment_id=segment_id)["queued"]
    assert bulk.run_due(env.engine, max_chunks=1) == 2
    (request,) = _requests(env, workflow_id)
    assert request["entered"] == 2 and request["finished_at"] is None
    with db.write(env.engine) as conn:      # as if the chunk's progress had been lost
        conn.execute(update(bulk_enrollments).where(bulk_enrollments.c.id == request["id"])
                     .values(after_id=0))
    bulk.run_due(env.engine)
    with db.read(env.engine) as conn:
        entered = conn.execute(select(enrollments.c.subscriber_id).where(
            enrollments.c.workflow_id == workflow_id)).scalars().all()
    assert sorted(entered) == people                              # each once, every_time or not
    assert _requests(env, workflow_id)[0]["finished_at"] is not None


def test_archiving_stops_a_bulk_enrollment_and_the_page_shows_one_going_on(env, client):
    from tests.conftest import csrf_token

    segment_id, people = _segment(env, 4)
    workflow_id = published(env, chain(("g", "goal", {"name": "x"})))
    with db.write(env.engine) as conn:
        workflows.enroll(conn, ACTOR, workflow_id, segment_id=segment_id)
    env.login(client, env.user("Administrator"))
    html = client.get(f"/automation/workflows/{workflow_id}").get_data(as_text=True)
    assert "Enrolling a segment in the background: 0 of 4 enrolled so far." in html
    answer = client.post(f"/automation/workflows/{workflow_id}/archive",
                         data={"csrf_token": csrf_token(html), "confirm": "on"})
    assert answer.status_code == 302
    bulk.run_due(env.engine)
    assert people_in(env, workflow_id) == []
    assert _requests(env, workflow_id)[0]["finished_at"] is not None
    segment_form = client.post(f"/automation/workflows/{workflow_id}/enroll", data={
        "csrf_token": csrf_token(html), "segment_id": str(segment_id)}, follow_redirects=True)
    assert "takes no one" in segment_form.get_data(as_text=True)


def test_enrolling_a_segment_evaluates_it_once(env):
    """The segment's query runs once per enrollment request: it gives the people and their
    number (inline or in the background) in one go, not a count and then the people."""
    from sqlalchemy import event

    small_segment, small = _segment(env, 2)
    big_segment, _ = _segment(env, 5)
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"})))
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "city" in statement:         # the segments' rule (the workflow filters on nothing)
            seen.append(statement)

    event.listen(env.engine, "before_cursor_execute", note)
    try:
        with db.write(env.engine) as conn:
            inline = workflows.enroll(conn, ACTOR, workflow_id, segment_id=small_segment)
        assert len(seen) == 1, seen
        with db.write(env.engine) as conn:      # no wake-up: only the request is made here
            queued = workflows.enroll(conn, ACTOR, workflow_id, segment_id=big_segment)
        assert len(seen) == 2, seen
    finally:
        event.remove(env.engine, "before_cursor_execute", note)
    assert inline == {"asked": 2, "entered": 2, "queued": False}
    assert sorted(people_in(env, workflow_id)) == small
    assert queued == {"asked": 5, "entered": 0, "queued": True}
    assert _requests(env, workflow_id)[0]["asked"] == 5
