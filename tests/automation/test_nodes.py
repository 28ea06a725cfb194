"""Node types through the real service (the rest are in test_workflows.py): HTTP requests to a
real receiver on 127.0.0.1 that checks the Standard Webhooks signature, notify (to a real SMTP
sink), wait until, switch, remove from list, suppress, frequency cap, send window, enroll in
another workflow, and a split's automatic winner."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from altkraft_onprem import db
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience import subscribers
from altkraft_onprem.automation.workflow_models import splits, steps
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.messages import service as messages
from tests.api.conftest import Api
from tests.campaigns.helpers import record_events
from tests.conftest import Env

from .conftest import sending_env
from .helpers import (
    ACTOR,
    a_list,
    chain,
    enroll,
    enrollment_of,
    fields_of,
    people_in,
    person,
    published,
    run_later,
    steps_of,
    uid,
)


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, module_smtp_sink) -> Env:
    yield from sending_env(template_db, tmp_path_factory, module_smtp_sink)


@pytest.fixture()
def api(env) -> Api:
    return Api(env.app.test_client(), env.token("Administrator"))


def custom_field(env, kind: str = "text") -> str:
    key = f"f_{uid()}"
    with db.write(env.engine) as conn:
        field_service.create_field(conn, ACTOR, key, key, kind)
    return key


# --- HTTP request -----------------------------------------------------------------------------

def test_an_http_node_is_signed_and_maps_the_answer_into_fields(env, api, receiver):
    key = custom_field(env)
    receiver.bodies["/crm"] = b'{"status": "gold", "ignored": 1}'
    created = api("POST", "/workflows", json=chain(("call", "webhook", {
        "url": receiver.url("/crm") + "?who={{ subscriber.email }}",
        "body": '{"email": "{{ subscriber.email }}", "by": "{{ event.by }}"}',
        "map": {"status": f"custom.{key}"}})))
    workflow_id = created.get_json()["id"]
    secret = api("POST", f"/workflows/{workflow_id}/signing-secret").get_json()["signing_secret"]
    assert secret.startswith("whsec_")
    assert api("POST", f"/workflows/{workflow_id}/publish", json={}).status_code == 200
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    (request,) = [r for r in receiver.requests if r.path.startswith("/crm?who=")]
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert request.headers["Idempotency-Key"] == f"{found['id']}:call:1"
    assert request.headers["webhook-id"] == request.headers["Idempotency-Key"]
    Webhook(secret).verify(request.body, {k.lower(): v for k, v in request.headers.items()})
    assert request.json == {"email": fields_of(env, subscriber_id)["email"], "by": "test"}
    assert found["state"] == "done" and fields_of(env, subscriber_id)["custom"][key] == "gold"


def test_an_http_node_retries_5xx_then_takes_its_failure_branch(env, receiver):
    receiver.statuses["/down"] = 503
    workflow_id = published(env, chain(
        ("call", "webhook", {"url": receiver.url("/down"), "max_attempts": 3}),
        ("ok", "update_fields", {"fields": {"company": "called"}}),
        ("failed", "update_fields", {"fields": {"company": "gave up"}}),
        edges=[{"from": "call", "to": "ok"}, {"from": "call", "to": "failed", "branch": "failure"}]))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    waiting = enrollment_of(env, workflow_id, subscriber_id)
    assert waiting["state"] == "active" and waiting["attempts"] == 1 and waiting["waiting_until"]
    run_later(env, 1)
    run_later(env, 2)
    assert len(receiver.to("/down")) == 3
    assert fields_of(env, subscriber_id)["company"] == "gave up"


def test_an_http_node_without_a_failure_branch_parks_the_person(env, receiver):
    receiver.statuses["/refuse"] = 400
    workflow_id = published(env, chain(("call", "webhook", {"url": receiver.url("/refuse")})))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "parked" and "HTTP 400" in found["end_reason"]


# --- notify, lists, suppression ---------------------------------------------------------------

def test_notify_emails_staff_with_the_person_in_it(env, module_smtp_sink):
    module_smtp_sink.clear()
    workflow_id = published(env, chain(("tell", "notify", {
        "to": ["sales@example.com"], "subject": "Lead {{ subscriber.email }}",
        "text": "City: {{ subscriber.city }}"})))
    subscriber_id = person(env, city="Kazan")
    enroll(env, workflow_id, subscriber_id)
    (message,) = module_smtp_sink.by_recipient("sales@example.com")
    assert message["Subject"] == f"Lead {fields_of(env, subscriber_id)['email']}"
    assert "City: Kazan" in message.get_content()


def test_remove_from_list_and_suppress(env):
    list_id = a_list(env)
    workflow_id = published(env, chain(("leave", "remove_from_list", {"list_id": list_id}),
                                       ("block", "suppress", {"reason": "asked by phone"})))
    subscriber_id = person(env, list_ids=[list_id])
    enroll(env, workflow_id, subscriber_id)
    person_now = fields_of(env, subscriber_id)
    assert person_now["lists"] == [] and person_now["state"] == "suppressed"


# --- waits and windows ------------------------------------------------------------------------

def test_wait_until_a_weekday_and_time_in_the_persons_zone(env):
    workflow_id = published(env, chain(("w", "wait_until", {"weekdays": [1], "time": "09:00"}),
                                       ("f", "update_fields", {"fields": {"company": "monday"}})))
    subscriber_id = person(env, timezone="Europe/Berlin")
    enroll(env, workflow_id, subscriber_id)
    until = enrollment_of(env, workflow_id, subscriber_id)["waiting_until"]
    local = until.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.isoweekday(), local.hour, local.minute) == (1, 9, 0)
    assert timedelta(0) < until - utcnow() <= timedelta(days=7)
    run_later(env, 24 * 7 + 1)
    assert fields_of(env, subscriber_id)["company"] == "monday"


def test_wait_until_a_date_field_with_an_offset(env):
    key = custom_field(env, "date")
    workflow_id = published(env, chain(
        ("w", "wait_until", {"field": f"custom.{key}", "offset_days": -1, "time": "08:00"}),
        ("f", "update_fields", {"fields": {"company": "reminded"}})))
    day = (utcnow() + timedelta(days=5)).date()
    subscriber_id = person(env, timezone="Asia/Tokyo", custom={key: day.isoformat()})
    enroll(env, workflow_id, subscriber_id)
    until = enrollment_of(env, workflow_id, subscriber_id)["waiting_until"]
    assert until == datetime.combine(day - timedelta(days=1), datetime.min.time().replace(hour=8),
                                     tzinfo=ZoneInfo("Asia/Tokyo"))


def test_wait_until_a_condition_goes_on_when_it_holds_or_times_out(env):
    city = f"Town-{uid()}"
    workflow_id = published(env, chain(
        ("w", "wait_until", {"conditions": {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": city}]}, "timeout": "P3D",
            "check_every": "PT10M"}),
        ("met", "update_fields", {"fields": {"company": "met"}}),
        ("late", "update_fields", {"fields": {"company": "timed out"}}),
        edges=[{"from": "w", "to": "met"}, {"from": "w", "to": "late", "branch": "timeout"}]))
    already, later, never, tested = (person(env, city=city), person(env), person(env),
                                     person(env))
    enroll(env, workflow_id, already, later, never)
    assert fields_of(env, already)["company"] == "met"          # true at once: no wait
    waiting = enrollment_of(env, workflow_id, later)
    assert waiting["node_id"] == "w" and waiting["wake_at"] < waiting["waiting_until"]
    assert waiting["wake_at"] - utcnow() <= timedelta(minutes=10)
    assert timedelta(days=2, hours=23) < waiting["waiting_until"] - utcnow() <= timedelta(days=3)
    run_later(env, 1)                                            # looked again: still not
    assert fields_of(env, later)["company"] is None
    with db.write(env.engine) as conn:
        subscribers.update_subscriber(conn, ACTOR, later, {"city": city})
    run_later(env, 2)
    assert fields_of(env, later)["company"] == "met"
    assert [s[:3] for s in steps_of(env, enrollment_of(env, workflow_id, later)["id"])][0] == ("w", 1, None)
    for hours in (24, 48, 73):
        run_later(env, hours)
    assert fields_of(env, never)["company"] == "timed out"
    assert steps_of(env, enrollment_of(env, workflow_id, never)["id"])[0] == ("w", 1, "timeout")
    enroll(env, workflow_id, tested, test=True)                  # a test run does not wait
    assert fields_of(env, tested)["company"] == "timed out"


def test_wait_until_a_condition_needs_a_timeout_and_valid_conditions(env):
    from altkraft_onprem.automation import workflows
    from altkraft_onprem.errors import ServiceError

    for config, words in (({"conditions": {"op": "and", "rules": []}}, "need a timeout"),
                          ({"conditions": {"op": "and", "rules": []}, "timeout": "P1D",
                            "at": "2030-01-01T09:00:00Z"}, "exactly one of"),
                          ({"conditions": {"op": "and", "rules": []}, "timeout": "P1D",
                            "check_every": "PT10S"}, "at least PT1M")):
        with db.write(env.engine) as conn:
            workflow_id = workflows.create(conn, ACTOR, chain(("w", "wait_until", config)))
            with pytest.raises(ServiceError) as refused:
                workflows.publish(conn, ACTOR, workflow_id)
        assert "node w (wait_until)" in refused.value.message and words in refused.value.message


def test_a_send_window_holds_people_until_it_opens(env):
    now = utcnow()
    start = (now + timedelta(hours=3)).strftime("%H:00")
    end = (now + timedelta(hours=4)).strftime("%H:00")
    workflow_id = published(env, chain(("win", "send_window", {"start": start, "end": end}),
                                       ("f", "update_fields", {"fields": {"company": "in window"}})))
    subscriber_id = person(env, timezone="UTC")
    enroll(env, workflow_id, subscriber_id)
    until = enrollment_of(env, workflow_id, subscriber_id)["waiting_until"]
    assert until.strftime("%H:%M") == start and until > now
    run_later(env, 4)
    assert fields_of(env, subscriber_id)["company"] == "in window"


# --- decisions --------------------------------------------------------------------------------

def test_switch_takes_the_first_matching_case_or_default(env):
    workflow_id = published(env, chain(
        ("sw", "switch", {"cases": [
            {"branch": "ru", "conditions": {"op": "and", "rules": [
                {"field": "language", "operator": "eq", "value": "ru"}]}},
            {"branch": "de", "conditions": {"op": "and", "rules": [
                {"field": "language", "operator": "eq", "value": "de"}]}}]}),
        ("ru", "update_fields", {"fields": {"company": "ru"}}),
        ("de", "update_fields", {"fields": {"company": "de"}}),
        ("other", "update_fields", {"fields": {"company": "other"}}),
        edges=[{"from": "sw", "to": "ru", "branch": "ru"}, {"from": "sw", "to": "de", "branch": "de"},
               {"from": "sw", "to": "other", "branch": "default"}]))
    people = {lang: person(env, language=lang) for lang in ("ru", "de", "fr")}
    enroll(env, workflow_id, *people.values())
    assert {lang: fields_of(env, sid)["company"] for lang, sid in people.items()} == {
        "ru": "ru", "de": "de", "fr": "other"}


def test_a_frequency_cap_counts_the_emails_sent_across_campaigns_and_workflows(env, module_smtp_sink):
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "Cap", subject="Cap", html="<p>x</p>")
    mailer = published(env, chain(("mail", "send_email", {"message_id": message_id,
                                                          "from_email": "news@example.com"})))
    capped = published(env, chain(
        ("cap", "frequency_cap", {"max_emails": 1, "days": 7}),
        ("go", "update_fields", {"fields": {"company": "under cap"}}),
        ("stop", "update_fields", {"fields": {"company": "capped"}}),
        edges=[{"from": "cap", "to": "go"}, {"from": "cap", "to": "stop", "branch": "capped"}]))
    mailed, fresh = person(env), person(env)
    enroll(env, mailer, mailed)
    enroll(env, capped, mailed, fresh)
    assert fields_of(env, mailed)["company"] == "capped"
    assert fields_of(env, fresh)["company"] == "under cap"


def test_the_enroll_node_moves_people_into_another_active_workflow(env):
    target = published(env, chain(("g", "update_fields", {"fields": {"company": "second"}})))
    first = published(env, chain(("hand", "enroll", {"workflow_id": target})))
    subscriber_id = person(env)
    enroll(env, first, subscriber_id)
    assert people_in(env, target) == [subscriber_id]
    assert fields_of(env, subscriber_id)["company"] == "second"


def test_a_split_picks_its_winner_on_the_test_groups_human_opens(env, module_smtp_sink):
    with db.write(env.engine) as conn:
        mail_a, _ = messages.create_message(conn, ACTOR, "A", subject="Variant A", html="<p>A</p>")
        mail_b, _ = messages.create_message(conn, ACTOR, "B", subject="Variant B", html="<p>B</p>")
    workflow_id = published(env, chain(
        ("ab", "split", {"variants": {"a": 50, "b": 50},
                         "winner": {"metric": "opens", "test_size": 4, "wait": "PT1H"}}),
        ("send_a", "send_email", {"message_id": mail_a, "from_email": "news@example.com"}),
        ("send_b", "send_email", {"message_id": mail_b, "from_email": "news@example.com"}),
        edges=[{"from": "ab", "to": "send_a", "branch": "a"},
               {"from": "ab", "to": "send_b", "branch": "b"}]))
    tested = [person(env) for _ in range(4)]
    enroll(env, workflow_id, *tested)
    branch_of = {sid: steps_of(env, enrollment_of(env, workflow_id, sid)["id"])[0][2] for sid in tested}
    favourite = branch_of[tested[0]]
    with db.read(env.engine) as conn:
        from altkraft_onprem.automation import workflows
        campaigns = workflows.get_version(conn, workflows.get(conn, workflow_id)["version_id"])["campaigns"]
    record_events(env, [{"at": utcnow(), "kind": "open", "subscriber_id": sid, "version_id": 1,
                         "campaign_id": campaigns[f"send_{favourite}"]}
                        for sid, branch in branch_of.items() if branch == favourite])
    later = [person(env) for _ in range(3)]
    enroll(env, workflow_id, *later)
    assert {enrollment_of(env, workflow_id, sid)["node_id"] for sid in later} == {"ab"}  # held
    run_later(env, 2)
    assert {steps_of(env, enrollment_of(env, workflow_id, sid)["id"])[0][2] for sid in later} == {favourite}
    with db.read(env.engine) as conn:
        decided = conn.execute(select(splits).where(splits.c.node_id == "ab")).mappings().one()
        test_group = conn.execute(select(steps.c.id).where(
            steps.c.workflow_id == workflow_id, steps.c.node_id == "ab")).all()
    assert decided["winner"] == favourite and decided["tested"] == 4 and len(test_group) == 7
    assert {item["branch"] for item in decided["results"]} == {"a", "b"}


def test_a_split_winner_needs_an_email_on_each_branch(env):
    from altkraft_onprem.automation import workflows
    from altkraft_onprem.errors import ServiceError

    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(
            ("ab", "split", {"variants": {"a": 1, "b": 1},
                             "winner": {"test_size": 10, "wait": "P1D"}}),
            ("x", "goal", {"name": "x"}),
            edges=[{"from": "ab", "to": "x", "branch": "a"}, {"from": "ab", "to": "x", "branch": "b"}]))
    with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
    assert "node ab (split)" in caught.value.message and "sends no email" in caught.value.message


@pytest.mark.parametrize(("edges", "judged", "send", "other"), [
    # both branches go to one send node: one campaign would judge both
    ([{"from": "ab", "to": "mail", "branch": "a"}, {"from": "ab", "to": "mail", "branch": "b"}],
     "a", "mail", "b"),
    # a: its own email, then the shared one; b: straight to the shared one, which judges it
    ([{"from": "ab", "to": "own", "branch": "a"}, {"from": "own", "to": "mail"},
      {"from": "ab", "to": "mail", "branch": "b"}], "b", "mail", "a"),
])
def test_a_split_winner_refuses_branches_judged_by_an_email_they_share(env, edges, judged, send,
                                                                       other):
    from altkraft_onprem.automation import workflows
    from altkraft_onprem.errors import ServiceError

    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "M", subject="M", html="<p>M</p>")
        workflow_id = workflows.create(conn, ACTOR, chain(
            ("ab", "split", {"variants": {"a": 1, "b": 1},
                             "winner": {"test_size": 10, "wait": "P1D"}}),
            ("own", "send_email", {"message_id": message_id, "from_email": "news@example.com"}),
            ("mail", "send_email", {"message_id": message_id, "from_email": "news@example.com"}),
            edges=edges))
    with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
    assert caught.value.field == "graph.nodes.0.config.winner"
    assert caught.value.message.startswith(
        f"node ab (split): branch {judged} is judged by the email of node {send}, which people "
        f"of branch {other} reach too")
