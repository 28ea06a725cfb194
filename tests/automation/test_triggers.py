"""Triggers through the real service (the rest are in test_workflows.py, test_tracked.py and
the clock and segment test files): a new subscriber by source, a confirmed double opt-in, a
restore from the trash, opens and reads (human only), bounces and complaints recorded by
inbound mail, and the backfill when a workflow becomes active."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import lists, optin, trash
from altkraft_onprem.automation import custom_events, jobs, workflows
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.inbound import service as inbound
from altkraft_onprem.inbound.parse import Recipient
from tests.api.conftest import Api
from tests.campaigns.helpers import record_events

from .helpers import ACTOR, a_list, chain, entered, fields_of, people_in, person, published, uid


def test_subscriber_created_by_api_only(env):
    workflow_id = published(env, chain(("g", "goal", {"name": "new"}), trigger={
        "type": "subscriber_created", "source": "api"}))
    api = Api(env.app.test_client(), env.token("Administrator"))
    created = api("POST", "/subscribers", json={"email": f"api-{uid()}@example.com"})
    assert created.status_code == 201, created.get_json()
    by_hand = person(env)
    assert entered(env, workflow_id) == [(created.get_json()["id"], {"source": "api"})]
    assert by_hand not in people_in(env, workflow_id)


def test_a_confirmed_double_opt_in_enrolls(env):
    with db.write(env.engine) as conn:
        list_id = lists.create_list(conn, ACTOR, f"double-{uid()}", optin="double",
                                   visibility="public")
    workflow_id = published(env, chain(("g", "goal", {"name": "confirmed"}), trigger={
        "type": "optin_confirmed", "list_id": list_id}))
    with db.write(env.engine) as conn:
        signed = optin.subscribe(conn, list_id, {"email": f"opt-{uid()}@example.com"})
    assert signed["action"] == "confirm" and people_in(env, workflow_id) == []
    with db.write(env.engine) as conn:
        optin.confirm(conn, signed["subscriber_id"], list_id)
    assert entered(env, workflow_id) == [(signed["subscriber_id"], {"list_id": list_id})]


def test_restored_from_the_trash_enrolls(env):
    workflow_id = published(env, chain(("g", "goal", {"name": "back"}), trigger={"type": "restored"}))
    subscriber_id = person(env)
    with db.write(env.engine) as conn:
        trash.delete_to_trash(conn, ACTOR, ids=[subscriber_id])
    with db.write(env.engine) as conn:
        trash.restore(conn, ACTOR, ids=[subscriber_id])
    assert people_in(env, workflow_id) == [subscriber_id]


@pytest.mark.parametrize("kind", ["open", "read"])
def test_human_opens_and_reads_enroll_and_machine_ones_do_not(env, kind):
    campaign_id = 980000 + int(uid()[:4], 16)
    workflow_id = published(env, chain(("g", "goal", {"name": kind}), trigger={
        "type": f"email_{'opened' if kind == 'open' else 'read'}", "campaign_id": campaign_id}))
    human, machine = person(env), person(env)
    extra = {"read_seconds": 12.0, "read_class": "read"} if kind == "read" else {}
    record_events(env, [
        {"at": utcnow(), "kind": kind, "campaign_id": campaign_id, "subscriber_id": human,
         "version_id": 1, **extra},
        {"at": utcnow(), "kind": kind, "campaign_id": campaign_id, "subscriber_id": machine,
         "version_id": 1, "machine": True, "reason": "proxy", **extra}])
    assert people_in(env, workflow_id) == [human]


def _bounce(env, subscriber_id: int, bounce_class: str) -> None:
    with db.write(env.engine) as conn:
        email = fields_of(env, subscriber_id)["email"]
        inbound.record_bounce(conn, env.settings, inbound_id=None, source="relay",
                              subscriber_id=subscriber_id, campaign_id=None, email=email,
                              recipient=Recipient(address=email, status="5.1.1",
                                                  diagnostic="550 5.1.1 no such user"),
                              bounce_class=bounce_class, rule="test", rules_version=1)


def test_bounced_by_class_and_complained_enroll_though_the_address_is_suppressed(env):
    hard = published(env, chain(("g", "goal", {"name": "hard"}), trigger={
        "type": "bounced", "bounce_class": "hard"}))
    complained = published(env, chain(("g", "goal", {"name": "spam"}), trigger={"type": "complained"}))
    bounced, soft, reporter = person(env), person(env), person(env)
    _bounce(env, bounced, "hard")
    _bounce(env, soft, "soft")
    with db.write(env.engine) as conn:
        inbound.record_complaint(conn, env.settings, inbound_id=None, source="relay",
                                 subscriber_id=reporter, campaign_id=None,
                                 email=fields_of(env, reporter)["email"], feedback_type="abuse")
    assert people_in(env, hard) == [bounced] and fields_of(env, bounced)["state"] == "bounced"
    assert entered(env, hard)[0][1]["bounce_class"] == "hard"
    assert people_in(env, complained) == [reporter]


def test_unsubscribing_from_a_list_enrolls_in_its_unsubscribed_workflow_and_runs_its_steps(env):
    from altkraft_onprem.audience import subscribers

    list_id, other_list = a_list(env), a_list(env)
    workflow_id = published(env, chain(("f", "update_fields", {"fields": {"company": "left us"}}),
                                       trigger={"type": "unsubscribed", "list_id": list_id}))
    leaver, stayer, elsewhere = (person(env, list_ids=[list_id]), person(env, list_ids=[list_id]),
                                 person(env, list_ids=[other_list]))
    with db.write(env.engine) as conn:
        subscribers.set_membership(conn, leaver, list_id, "unsubscribed")
        subscribers.set_membership(conn, elsewhere, other_list, "unsubscribed")
    assert entered(env, workflow_id) == [(leaver, {"list_id": list_id})]
    assert fields_of(env, leaver)["company"] == "left us"
    assert fields_of(env, stayer)["company"] is None and fields_of(env, elsewhere)["company"] is None


# --- backfill on activation -------------------------------------------------------------------

def test_a_backfill_of_matching_takes_in_the_lists_members_at_activation(env):
    list_id = a_list(env)
    members = [person(env, list_ids=[list_id]) for _ in range(3)]
    stranger = person(env)
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(
            ("g", "goal", {"name": "welcome"}), trigger={"type": "list_joined", "list_id": list_id},
            entry={"backfill": "matching"}))
        result = workflows.publish(conn, ACTOR, workflow_id, wake=jobs.wake)
    assert result["backfilled"] == 3
    assert sorted(people_in(env, workflow_id)) == sorted(members) and stranger not in people_in(env, workflow_id)
    with db.write(env.engine) as conn:      # published again while active: no second backfill
        assert workflows.publish(conn, ACTOR, workflow_id)["backfilled"] == 0


def test_a_backfill_of_days_replays_the_custom_events_of_that_time(env):
    name = f"paid_{uid()}"
    buyer, other = person(env), person(env)
    with db.write(env.engine) as conn:
        custom_events.receive(conn, name=name, subscriber_id=buyer, properties={"order": "B-1"})
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(
            ("g", "goal", {"name": "paid"}), trigger={"type": "event", "name": name},
            entry={"backfill": {"days": 7}}))
        workflows.publish(conn, ACTOR, workflow_id, wake=jobs.wake)
    assert entered(env, workflow_id) == [(buyer, {"name": name, "order": "B-1"})]
    assert other not in people_in(env, workflow_id)


def test_a_backfill_the_trigger_cannot_serve_is_refused_at_publish(env):
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(
            ("g", "goal", {"name": "x"}), trigger={"type": "field_changed", "field": "city"},
            entry={"backfill": {"days": 3}}))
    with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
    assert caught.value.field == "entry.backfill" and "field_changed" in caught.value.message
