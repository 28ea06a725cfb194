"""Outgoing webhooks through the real service: the outbox, a real HTTP receiver on 127.0.0.1
that checks each signature with the standardwebhooks library, retries, auto-disable, the
delivery log and redelivery, the SSRF rules."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from altkraft_onprem import config, db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import subscribers, trash
from altkraft_onprem.automation import jobs, outbox, webhook_sender, webhooks
from altkraft_onprem.automation.models import webhook_deliveries
from altkraft_onprem.automation.models import webhooks as webhook_table
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from tests.api.conftest import Api

ACTOR = system_actor("test")


@pytest.fixture(scope="module")
def admin_token(env) -> str:
    return env.token("Administrator")


@pytest.fixture()
def api(env, admin_token) -> Api:
    return Api(env.app.test_client(), admin_token)


@pytest.fixture(autouse=True)
def quiet_subscriptions(env):
    """Each test starts with no active subscription (earlier ones would get its events)."""
    with db.write(env.engine) as conn:
        conn.execute(update(webhook_table).values(active=False))
    webhooks.interest.invalidate()


def subscribe(api, receiver, path="/hook", events=("subscriber.created",), **extra) -> dict:
    response = api("POST", "/webhooks", json={"url": receiver.url(path), "events": list(events), **extra})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add_person(env, **fields) -> int:
    with db.write(env.engine) as conn:
        return subscribers.create_subscriber(
            conn, ACTOR, {"email": f"wh-{uuid.uuid4().hex[:8]}@example.com", **fields})


def verified(secret: str, request) -> dict:
    """The envelope, after the standardwebhooks library checked the signature."""
    return Webhook(secret).verify(request.body, request.headers)


def test_a_new_subscriber_reaches_the_receiver_signed(env, api, receiver):
    created = subscribe(api, receiver)
    assert created["secret"].startswith("whsec_")
    subscriber_id = add_person(env)
    (request,) = receiver.to("/hook")
    envelope = verified(created["secret"], request)
    assert set(envelope) == {"id", "type", "occurred_at", "data"}
    assert envelope["type"] == "subscriber.created"
    assert envelope["data"] == {"subscriber_id": subscriber_id, "source": "manual"}
    assert request.headers["webhook-id"] == envelope["id"]
    assert request.headers["webhook-signature"].startswith("v1,")
    log = api("GET", f"/webhooks/{created['id']}/deliveries").get_json()
    assert log["total"] == 1 and log["items"][0]["state"] == "delivered"
    assert log["items"][0]["last_status"] == 200
    assert log["items"][0]["response_excerpt"] == "status 200 for /hook"


def test_a_wrong_secret_does_not_verify(env, api, receiver):
    subscribe(api, receiver)
    add_person(env)
    with pytest.raises(Exception, match="signature"):
        verified(webhooks.new_secret(), receiver.requests[0])


def test_only_the_chosen_event_types_are_sent(env, api, receiver):
    subscribe(api, receiver, events=["subscriber.updated"])
    subscriber_id = add_person(env, first_name="Ann")
    with db.write(env.engine) as conn:
        subscribers.update_subscriber(conn, ACTOR, subscriber_id, {"first_name": "Anna"})
    (request,) = receiver.requests
    assert request.json["type"] == "subscriber.updated"
    assert request.json["data"]["changes"] == {"first_name": {"from": "Ann", "to": "Anna"}}


def test_a_list_filter_keeps_only_that_lists_members(env, api, receiver):
    with db.write(env.engine) as conn:
        from altkraft_onprem.audience import lists
        list_id = lists.create_list(conn, ACTOR, f"wh-{uuid.uuid4().hex[:6]}")
    subscribe(api, receiver, events=["subscriber.deleted"], list_id=list_id)
    member, stranger = add_person(env), add_person(env)
    with db.write(env.engine) as conn:
        subscribers.set_membership(conn, member, list_id, "confirmed")
        trash.delete_to_trash(conn, ACTOR, ids=[member, stranger])
    (request,) = receiver.requests
    assert request.json["data"]["subscriber_ids"] == [member]


def test_a_replayed_outbox_row_delivers_once(env, api, receiver):
    subscribe(api, receiver)
    add_person(env)
    with db.write(env.engine) as conn:
        row = conn.execute(select(outbox.outbox).order_by(outbox.outbox.c.id.desc())).mappings().first()
        assert webhooks.fan_out(conn, [dict(row)]) == 1        # offered again: the key holds
    jobs.deliver_webhooks()
    assert len(receiver.requests) == 1


def _make_due(env):
    with db.write(env.engine) as conn:
        conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.state == "pending")
                     .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_a_failing_receiver_is_retried_on_the_schedule_then_switched_off(env, api, receiver):
    receiver.statuses["/down"] = 503
    created = subscribe(api, receiver, path="/down")
    add_person(env)
    with db.read(env.engine) as conn:
        first = conn.execute(select(webhook_deliveries).where(
            webhook_deliveries.c.webhook_id == created["id"])).mappings().one()
    assert first["state"] == "pending" and first["attempts"] == 1 and first["last_status"] == 503
    delay = (first["next_attempt_at"] - first["last_attempt_at"]).total_seconds()
    assert delay == webhook_sender.RETRY_SECONDS[0]
    for _ in range(3):                  # disable_after is 4 in this module
        _make_due(env)
        jobs.deliver_webhooks()
    found = api("GET", f"/webhooks/{created['id']}").get_json()
    assert found["active"] is False and "4 failed attempts" in found["disabled_reason"]
    assert len(receiver.to("/down")) == 4
    _make_due(env)
    jobs.deliver_webhooks()                 # switched off: nothing more is sent
    assert len(receiver.to("/down")) == 4


def test_a_4xx_answer_is_not_retried(env, api, receiver):
    receiver.statuses["/gone"] = 410
    created = subscribe(api, receiver, path="/gone")
    add_person(env)
    (item,) = api("GET", f"/webhooks/{created['id']}/deliveries").get_json()["items"]
    assert item["state"] == "failed" and item["last_status"] == 410


def test_a_slow_receiver_times_out_and_is_retried_later(env, api, receiver):
    receiver.delays["/slow"] = 3.0          # the timeout is 1 s in this module
    created = subscribe(api, receiver, path="/slow")
    add_person(env)
    (item,) = api("GET", f"/webhooks/{created['id']}/deliveries").get_json()["items"]
    assert item["state"] == "pending" and item["last_status"] is None
    assert "timed out" in item["last_error"].lower() or "took longer" in item["last_error"]


def test_redeliver_sends_the_same_event_again(env, api, receiver):
    created = subscribe(api, receiver)
    add_person(env)
    (item,) = api("GET", f"/webhooks/{created['id']}/deliveries").get_json()["items"]
    response = api("POST", f"/webhooks/{created['id']}/deliveries/{item['id']}/redeliver")
    assert response.status_code == 202
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    verified(created["secret"], second)


def test_a_rotated_secret_signs_with_both_until_the_next_rotation(env, api, receiver):
    created = subscribe(api, receiver)
    rotated = api("PATCH", f"/webhooks/{created['id']}", json={"rotate_secret": True}).get_json()
    assert rotated["secret"] != created["secret"]
    add_person(env)
    (request,) = receiver.requests
    verified(created["secret"], request)
    verified(rotated["secret"], request)
    assert len(request.headers["webhook-signature"].split(" ")) == 2


def test_private_and_loopback_targets_are_refused_by_default(env):
    strict = config.Settings({**dict(env.settings), "automation.webhook_allowed_private_networks": []})
    for url in ("http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://[::1]/hook",
                "http://169.254.169.254/latest/meta-data", "ftp://example.com/x"):
        with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
            webhooks.create(conn, ACTOR, strict, url=url, events=["subscriber.created"])
        assert caught.value.field == "url"


def test_bad_input_is_a_problem_naming_the_field(api, receiver):
    response = api("POST", "/webhooks", json={"url": receiver.url(), "events": ["no.such"]})
    assert response.status_code == 422 and "events" in response.get_json()["detail"]
    response = api("POST", "/webhooks", json={"url": receiver.url(), "events": []})
    assert response.status_code == 422


def test_a_viewer_cannot_subscribe(env, api, receiver):
    token = env.token("Viewer")
    response = api("POST", "/webhooks", token=token,
                   json={"url": receiver.url(), "events": ["subscriber.created"]})
    assert response.status_code == 403


def test_the_consumer_start_hooks_of_every_domain_are_kept():
    """huey keys start-up hooks by name; automation's must not replace the campaigns' one."""
    from altkraft_onprem import jobqueue, tasks

    tasks.load_task_modules()
    hooks = {fn.__module__ for fn in jobqueue.huey._startup.values()}
    assert {"altkraft_onprem.campaigns.jobs", "altkraft_onprem.automation.jobs"} <= hooks
