"""Workflows through the real service: triggers, nodes, waits, branches, exactly-once keys,
publishing (immutable versions, refusals naming the node), the API and the CLI."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.audience import subscribers, trash
from altkraft_onprem.automation import runner, workflows
from altkraft_onprem.automation.workflow_models import enrollments, steps
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from tests.api.conftest import Api

from .helpers import (
    ACTOR,
    a_list,
    chain,
    enroll,
    enrollment_of,
    fields_of,
    person,
    published,
    run_later,
    steps_of,
)


@pytest.fixture(scope="module")
def admin_token(env) -> str:
    return env.token("Administrator")


@pytest.fixture()
def api(env, admin_token) -> Api:
    return Api(env.app.test_client(), admin_token)


# --- a whole journey through the API ----------------------------------------------------------

def test_a_custom_event_enrolls_once_per_idempotency_key(env, api):
    definition = chain(("points", "update_fields", {"fields": {"city": "{{ not a template }}"}}),
                       ("won", "goal", {"name": "paid"}),
                       trigger={"type": "event", "name": "order_paid"})
    created = api("POST", "/workflows", json=definition)
    assert created.status_code == 201, created.get_json()
    workflow_id = created.get_json()["id"]
    assert api("POST", f"/workflows/{workflow_id}/publish", json={}).get_json()["version"] == 1
    subscriber_id = person(env)
    for _ in range(2):
        answer = api("POST", "/events", json={"subscriber_id": subscriber_id, "name": "order_paid",
                                              "properties": {"order_id": "A-1"},
                                              "idempotency_key": f"order-A-1-{workflow_id}"})
        assert answer.status_code == 202
    page = api("GET", f"/workflows/{workflow_id}/enrollments").get_json()
    assert page["total"] == 1
    (item,) = page["items"]
    assert item["state"] == "done" and item["subscriber_id"] == subscriber_id
    stats = api("GET", f"/workflows/{workflow_id}/stats").get_json()
    assert stats["points"]["done"] == 1 and stats["won"]["done"] == 1
    assert fields_of(env, subscriber_id)["city"] == "{{ not a template }}"
    enrollment = enrollment_of(env, workflow_id, subscriber_id)
    assert enrollment["event"] == {"name": "order_paid", "order_id": "A-1"}


def test_events_for_unknown_people_are_404_and_bad_input_422(api):
    assert api("POST", "/events", json={"email": "nobody@example.com", "name": "x"}).status_code == 404
    assert api("POST", "/events", json={"name": "x"}).status_code == 422


# --- publishing -------------------------------------------------------------------------------

@pytest.mark.parametrize(("definition", "words"), [
    (chain(("a", "wait", {"duration": "PT1H"}), ("b", "wait", {"duration": "PT1H"}),
           edges=[{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]),
     ["cycle without a bounded go-to", "a -> b -> a"]),
    (chain(("a", "wait", {"duration": "PT1H"}), edges=[{"from": "a", "to": "ghost"}]),
     ["node ghost does not exist", "dangling"]),
    (chain(("a", "teleport", {})), ["node a (teleport)", "unknown node type 'teleport'"]),
    (chain(("a", "update_fields", {"fields": {"shoe_size": 42}})),
     ["node a (update_fields)", "field 'shoe_size' does not exist"]),
    (chain(("a", "condition", {"conditions": {"op": "and", "rules": []}}), ("b", "exit", {}),
           edges=[{"from": "a", "to": "b", "branch": "maybe"}]),
     ["node a (condition)", "no branch 'maybe'"]),
    (chain(("a", "wait", {"duration": "soon"})), ["node a (wait)", "duration"]),
])
def test_publish_refuses_naming_the_node_and_the_reason(env, definition, words):
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, definition)
    with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
    for word in words:
        assert word in caught.value.message


def test_publish_refuses_an_archived_message(env):
    from altkraft_onprem.messages import service as messages

    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "Old", subject="Hi", html="<p>Hi</p>")
        messages.archive_message(conn, ACTOR, message_id)
        workflow_id = workflows.create(conn, ACTOR, chain(("mail", "send_email", {
            "message_id": message_id, "from_email": "news@example.com"})))
    with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
    assert "node mail (send_email)" in caught.value.message and "archived" in caught.value.message


def test_publish_answers_409_for_the_draft_and_404_for_a_node_map_naming_no_node(env, api):
    """What is wrong with the stored draft is a conflict; a node map (this request's input)
    naming a node the new version lacks names something that does not exist: 404 naming the
    field, as for any id in a body (docs/api.md: a schema-valid request gets no 422)."""
    with db.write(env.engine) as conn:
        broken = workflows.create(conn, ACTOR, chain(("a", "wait", {"duration": "PT1H"}),
                                                     edges=[{"from": "a", "to": "ghost"}]))
        fine = workflows.create(conn, ACTOR, chain(("w", "wait", {"duration": "PT1H"})))
    answer = api("POST", f"/workflows/{broken}/publish", json={})
    assert answer.status_code == 409 and "ghost" in answer.get_json()["detail"]
    answer = api("POST", f"/workflows/{fine}/publish", json={"node_map": {"old": "nowhere"}})
    assert answer.status_code == 404, answer.get_json()
    assert "nowhere" in answer.get_json()["detail"]
    assert [e["field"] for e in answer.get_json()["errors"]] == ["node_map"]
    assert api("GET", f"/workflows/{fine}").get_json()["version"] is None      # nothing published
    answer = api("POST", f"/workflows/{fine}/publish", json={"node_map": {"old": "w"}})
    assert answer.status_code == 200 and answer.get_json()["moved"] == 0


def test_versions_are_immutable_and_people_stay_on_theirs(env):
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"}),
                                       ("f", "update_fields", {"fields": {"city": "Old"}})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    with db.write(env.engine) as conn:
        current = workflows.get(conn, workflow_id)
        draft = current["draft"]
        draft["graph"]["nodes"][1]["config"]["fields"]["city"] = "New"
        workflows.update_draft(conn, ACTOR, workflow_id, draft)
        assert workflows.publish(conn, ACTOR, workflow_id)["version"] == 2
    newcomer = person(env)
    enroll(env, workflow_id, newcomer)
    run_later(env, 25)
    assert fields_of(env, subscriber_id)["city"] == "Old"
    assert fields_of(env, newcomer)["city"] == "New"


# --- nodes ------------------------------------------------------------------------------------

def test_a_wait_holds_until_its_time_in_utc(env):
    workflow_id = published(env, chain(("w", "wait", {"duration": "PT2H"}),
                                       ("f", "update_fields", {"fields": {"company": "done"}})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    first = enrollment_of(env, workflow_id, subscriber_id)
    assert first["node_id"] == "w" and first["state"] == "active"
    assert timedelta(hours=1, minutes=59) < first["waiting_until"] - first["started_at"] <= timedelta(hours=2, seconds=5)
    run_later(env, 1)
    assert enrollment_of(env, workflow_id, subscriber_id)["node_id"] == "w"
    run_later(env, 2.1)
    after = enrollment_of(env, workflow_id, subscriber_id)
    assert after["state"] == "done" and fields_of(env, subscriber_id)["company"] == "done"


def test_a_test_enrollment_compresses_waits(env):
    workflow_id = published(env, chain(("w", "wait", {"duration": "P30D"}),
                                       ("f", "update_fields", {"fields": {"company": "tested"}})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id, test=True)
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "done" and found["test"] is True
    assert fields_of(env, subscriber_id)["company"] == "tested"


def test_condition_branches_yes_and_no(env):
    definition = chain(
        ("c", "condition", {"conditions": {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": "Moscow"}]}}),
        ("y", "update_fields", {"fields": {"company": "yes"}}),
        ("n", "update_fields", {"fields": {"company": "no"}}),
        edges=[{"from": "c", "to": "y", "branch": "yes"}, {"from": "c", "to": "n", "branch": "no"}])
    workflow_id = published(env, definition)
    moscow, paris = person(env, city="Moscow"), person(env, city="Paris")
    enroll(env, workflow_id, moscow, paris)
    assert fields_of(env, moscow)["company"] == "yes"
    assert fields_of(env, paris)["company"] == "no"


def test_goto_loops_a_bounded_number_of_times(env):
    definition = chain(("tick", "goal", {"name": "tick"}), ("again", "goto", {"target": "tick", "max_visits": 3}),
                       ("end", "update_fields", {"fields": {"company": "looped"}}))
    workflow_id = published(env, definition)
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "done"
    assert steps_of(env, found["id"]) == [("tick", 1, None), ("again", 1, None), ("tick", 2, None),
                                          ("again", 2, None), ("tick", 3, None), ("again", 3, None),
                                          ("end", 1, None)]


def test_lists_split_and_exit_nodes(env):
    list_id = a_list(env)
    definition = chain(("join", "add_to_list", {"list_id": list_id}),
                       ("ab", "split", {"variants": {"a": 50, "b": 50}}),
                       ("out", "exit", {"reason": "enough"}),
                       edges=[{"from": "join", "to": "ab"}, {"from": "ab", "to": "out", "branch": "a"},
                              {"from": "ab", "to": "out", "branch": "b"}])
    workflow_id = published(env, definition)
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "exited" and found["end_reason"] == "enough"
    assert [m["list_id"] for m in fields_of(env, subscriber_id)["lists"]] == [list_id]


def test_wait_for_event_takes_the_event_branch_or_times_out(env, api):
    definition = chain(
        ("w", "wait_for_event", {"event": "paid", "timeout": "P2D"}),
        ("e", "update_fields", {"fields": {"company": "paid"}}),
        ("t", "update_fields", {"fields": {"company": "timed out"}}),
        edges=[{"from": "w", "to": "e", "branch": "event"}, {"from": "w", "to": "t", "branch": "timeout"}])
    workflow_id = published(env, definition)
    payer, idler = person(env), person(env)
    enroll(env, workflow_id, payer, idler)
    api("POST", "/events", json={"subscriber_id": payer, "name": "paid"})
    assert fields_of(env, payer)["company"] == "paid"
    assert fields_of(env, idler)["company"] is None
    run_later(env, 49)
    assert fields_of(env, idler)["company"] == "timed out"


# --- triggers ---------------------------------------------------------------------------------

def test_joining_a_list_enrolls_and_reentry_once_means_once(env):
    list_id = a_list(env)
    workflow_id = published(env, chain(("f", "update_fields", {"fields": {"company": "welcome"}}),
                                       trigger={"type": "list_joined", "list_id": list_id}))
    subscriber_id = person(env, list_ids=[list_id])
    assert fields_of(env, subscriber_id)["company"] == "welcome"
    with db.write(env.engine) as conn:
        subscribers.set_membership(conn, subscriber_id, list_id, "unsubscribed")
        subscribers.set_membership(conn, subscriber_id, list_id, "confirmed")
    with db.read(env.engine) as conn:
        count = len(conn.execute(select(enrollments.c.id).where(
            enrollments.c.workflow_id == workflow_id)).all())
    assert count == 1


def test_a_field_change_trigger_sees_from_and_to(env):
    workflow_id = published(env, chain(("g", "goal", {"name": "vip"}), trigger={
        "type": "field_changed", "field": "company", "to": "VIP"}, entry={"reentry": "every_time"}))
    subscriber_id = person(env, company="Acme")
    with db.write(env.engine) as conn:
        subscribers.update_subscriber(conn, ACTOR, subscriber_id, {"company": "Other"})
        subscribers.update_subscriber(conn, ACTOR, subscriber_id, {"company": "VIP"})
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["event"] == {"field": "company", "from": "Other", "to": "VIP"}


def test_deleting_a_person_exits_them(env):
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    with db.write(env.engine) as conn:
        trash.delete_to_trash(conn, ACTOR, ids=[subscriber_id])
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "exited" and "deleted" in found["end_reason"]


# --- exactly once -----------------------------------------------------------------------------

def test_a_step_cannot_be_recorded_twice(env):
    """(enrollment, node, visit) is UNIQUE: replaying a finished step rolls its effects back."""
    workflow_id = published(env, chain(("f", "update_fields", {"fields": {"company": "once"}})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    found = enrollment_of(env, workflow_id, subscriber_id)
    with db.write(env.engine) as conn:        # pretend the step's move was lost, not the step
        conn.execute(update(enrollments).where(enrollments.c.id == found["id"]).values(
            state="active", node_id="f", visit=1, wake_at=utcnow(), active_key=None,
            lease_owner="test-runner", lease_until=utcnow() + timedelta(minutes=1)))
        subscribers.update_subscriber(conn, ACTOR, subscriber_id, {"company": "changed"})
    with pytest.raises(Exception, match="(?i)unique|duplicate"), env.app.app_context():
        runner.step(env.engine, env.settings, found["id"], "test-runner")
    assert fields_of(env, subscriber_id)["company"] == "changed"
    with db.read(env.engine) as conn:
        assert len(conn.execute(select(steps.c.id).where(steps.c.enrollment_id == found["id"])).all()) == 1


# --- permissions and the CLI ------------------------------------------------------------------

def test_an_editor_cannot_publish_a_workflow_that_sends(env):
    from altkraft_onprem.messages import service as messages

    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "Hi", subject="Hi", html="<p>Hi</p>")
    token = env.token("Editor")
    editor = Api(env.app.test_client(), token)
    created = editor("POST", "/workflows", json=chain(("mail", "send_email", {
        "message_id": message_id, "from_email": "news@example.com"})))
    assert created.status_code == 201
    answer = editor("POST", f"/workflows/{created.get_json()['id']}/publish", json={})
    assert answer.status_code == 403 and "campaigns:send" in answer.get_json()["detail"]


def test_the_cli_lists_pauses_and_enrolls(env):
    from click.testing import CliRunner

    from altkraft_onprem.cli import cli

    workflow_id = published(env, chain(("g", "goal", {"name": "cli"})))
    subscriber_id = person(env)
    environment = {"ALTKRAFT_DATA_DIR": str(env.data_dir), "ALTKRAFT_DATABASE__URL": env.database_url}
    runner_ = CliRunner()
    listed = runner_.invoke(cli, ["workflow", "list"], env=environment)
    assert listed.exit_code == 0 and f"{workflow_id}\tactive\tv1" in listed.output
    enrolled = runner_.invoke(cli, ["workflow", "enroll", str(workflow_id), "--subscriber",
                                    str(subscriber_id)], env=environment)
    assert enrolled.exit_code == 0, enrolled.output
    assert "1 of 1 enrolled" in enrolled.output
    paused = runner_.invoke(cli, ["workflow", "pause", str(workflow_id)], env=environment)
    assert paused.exit_code == 0 and "paused" in paused.output
    again = runner_.invoke(cli, ["workflow", "pause", str(workflow_id)], env=environment)
    assert again.exit_code == 1 and "cannot be paused" in again.output


def test_gdpr_erasure_takes_the_workflow_history_along(env):
    from altkraft_onprem.audience import gdpr

    workflow_id = published(env, chain(("g", "goal", {"name": "x"})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    with db.write(env.engine) as conn:
        gdpr.erase_person(conn, ACTOR, subscriber_id)
    with db.read(env.engine) as conn:
        assert conn.execute(select(enrollments.c.id).where(
            enrollments.c.subscriber_id == subscriber_id)).first() is None


def test_time_zone_names_are_listed_for_the_document_not_at_import():
    """Listing the IANA names reads the time zone database (some 20 ms): no start pays it,
    and the documents still offer them as the workflow's timezone enum."""
    import subprocess
    import sys

    from altkraft_onprem.automation.definition import WorkflowDefinition

    probe = ("import zoneinfo\ncalls = []\nlisting = zoneinfo.available_timezones\n"
             "zoneinfo.available_timezones = lambda: calls.append(1) or listing()\n"
             "import altkraft_onprem.app, altkraft_onprem.models_all, altkraft_onprem.jobs_all\n"
             "from altkraft_onprem import api\nassert calls == [], 'listed at import'\n"
             "assert 'Europe/Moscow' in api.timezones() and calls == [1]\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    schema = WorkflowDefinition.model_json_schema()["properties"]["timezone"]
    assert "Europe/Moscow" in schema["enum"] and "UTC" in schema["enum"]
