"""Parked enrollments go on when a person resumes them (API, CLI, UI), and a publish with a
node map moves each person once, onto a node they may have passed before."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.automation import workflows
from altkraft_onprem.automation.workflow_models import enrollments
from tests.api.conftest import Api
from tests.conftest import csrf_token

from .helpers import (
    ACTOR,
    chain,
    enroll,
    enrollment_of,
    fields_of,
    person,
    published,
    run_later,
    steps_of,
)
from .test_batches import _drop_fault, _fail_updates_of


@pytest.fixture()
def api(env) -> Api:
    return Api(env.app.test_client(), env.token("Administrator"))


def _parked(env, label: str) -> tuple[int, int]:
    """A workflow whose update step fails for one person (a fault in the real database):
    that person is parked there; the fault is gone afterwards."""
    workflow_id = published(env, chain(("f", "update_fields", {"fields": {"company": label}}),
                                       ("g", "goal", {"name": "after"})))
    subscriber_id = person(env)
    with db.write(env.engine) as conn:
        _fail_updates_of(conn, subscriber_id)
    try:
        enroll(env, workflow_id, subscriber_id)
        run_later(env, 0)
    finally:
        with db.write(env.engine) as conn:
            _drop_fault(conn)
    assert enrollment_of(env, workflow_id, subscriber_id)["state"] == "parked"
    return workflow_id, subscriber_id


def test_a_parked_person_goes_on_when_resumed_over_the_api(env, api):
    workflow_id, subscriber_id = _parked(env, "resumed")
    parked = enrollment_of(env, workflow_id, subscriber_id)
    answer = api("POST", f"/workflows/{workflow_id}/resume", json={"enrollment_ids": [parked["id"]]})
    assert answer.status_code == 200 and answer.get_json() == {"resumed": 1}
    run_later(env, 0)
    done = enrollment_of(env, workflow_id, subscriber_id)
    assert done["state"] == "done" and done["end_reason"] == "reached the end"
    assert fields_of(env, subscriber_id)["company"] == "resumed"
    assert [s[0] for s in steps_of(env, done["id"])] == ["f", "g"]
    again = api("POST", f"/workflows/{workflow_id}/resume", json={})
    assert again.get_json() == {"resumed": 0}            # nobody is parked any more
    assert api("POST", f"/workflows/{workflow_id}/resume", json={"enrollment_ids": "x"}).status_code == 422
    assert api("POST", "/workflows/999999/resume", json={}).status_code == 404


def test_the_cli_and_the_page_resume_everyone_parked(env, client):
    from click.testing import CliRunner

    from altkraft_onprem.cli import cli

    workflow_id, subscriber_id = _parked(env, "by cli")
    environment = {"ALTKRAFT_DATA_DIR": str(env.data_dir), "ALTKRAFT_DATABASE__URL": env.database_url}
    done = CliRunner().invoke(cli, ["workflow", "resume", str(workflow_id)], env=environment)
    assert done.exit_code == 0 and "1 resumed" in done.output, done.output
    run_later(env, 0)
    assert fields_of(env, subscriber_id)["company"] == "by cli"

    workflow_id, subscriber_id = _parked(env, "by page")
    env.login(client, env.user("Administrator"))
    html = client.get(f"/automation/workflows/{workflow_id}").get_data(as_text=True)
    assert 'id="resume"' in html and "stopped at f" in html
    answer = client.post(f"/automation/workflows/{workflow_id}/resume",
                         data={"csrf_token": csrf_token(html)}, follow_redirects=True)
    assert "1 person goes on from the step where they stopped." in answer.get_data(as_text=True)
    run_later(env, 0)
    assert fields_of(env, subscriber_id)["company"] == "by page"


def test_a_node_map_moves_people_once_and_counts_their_visits(env):
    workflow_id = published(env, chain(("a", "update_fields", {"fields": {"city": "A1"}}),
                                       ("b", "wait", {"duration": "P1D"}),
                                       ("c", "wait", {"duration": "P1D"})))
    first, second = person(env), person(env)
    enroll(env, workflow_id, first)
    run_later(env, 0)
    run_later(env, 25)                  # first: passed a and b, waiting at c
    enroll(env, workflow_id, second)
    run_later(env, 0)                   # second: passed a, waiting at b
    with db.write(env.engine) as conn:
        draft = workflows.get(conn, workflow_id)["draft"]
        draft["graph"]["nodes"][0]["config"]["fields"]["city"] = "A2"
        draft["graph"]["edges"] = [{"from": "b", "to": "a"}, {"from": "a", "to": "c"}]
        draft["graph"]["start"] = "b"
        workflows.update_draft(conn, ACTOR, workflow_id, draft)
        # c -> b takes first back onto b, which they passed (visit 2), and b -> a does not
        # move them on again; second goes from b onto a, which they passed too
        moved = workflows.publish(conn, ACTOR, workflow_id, node_map={"c": "b", "b": "a"})
    assert moved["moved"] == 2
    with db.read(env.engine) as conn:
        where = {r.subscriber_id: (r.node_id, r.visit) for r in conn.execute(select(
            enrollments.c.subscriber_id, enrollments.c.node_id, enrollments.c.visit).where(
            enrollments.c.workflow_id == workflow_id))}
    assert where == {first: ("b", 2), second: ("a", 2)}
    for hours in (100, 200, 300):
        run_later(env, hours)
    assert fields_of(env, first)["city"] == "A2" and fields_of(env, second)["city"] == "A2"
    for subscriber_id in (first, second):
        found = enrollment_of(env, workflow_id, subscriber_id)
        assert found["state"] == "done", found
        taken = steps_of(env, found["id"])
        assert len(taken) == len({(node, visit) for node, visit, _ in taken})
