"""The send-email node through the delivery ledger, to a real SMTP sink: the triggering event
in the message, one email per occurrence (re-entry sends again, a replayed step does not)."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.automation import custom_events, jobs, runner
from altkraft_onprem.automation.workflow_models import enrollments, steps
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.messages import service as messages
from tests.conftest import Env

from .conftest import sending_env
from .helpers import ACTOR, chain, enrollment_of, fields_of, person, published


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, module_smtp_sink) -> Env:
    yield from sending_env(template_db, tmp_path_factory, module_smtp_sink)


@pytest.fixture()
def sink(module_smtp_sink):
    module_smtp_sink.clear()
    return module_smtp_sink


def order_mail(env) -> int:
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(
            conn, ACTOR, "Order", subject="Order {{ event.order_id }}",
            html="<p>Hello {{ subscriber.first_name }}, order {{ event.order_id }} is paid.</p>")
    return message_id


def mail_workflow(env, message_id: int, event: str, **extra) -> int:
    """A workflow that sends the message when `event` is posted (each test its own event:
    earlier tests' workflows stay active)."""
    return published(env, chain(("mail", "send_email", {
        "message_id": message_id, "from_email": "shop@example.com", "from_name": "Shop"}),
        trigger={"type": "event", "name": event}, **extra))


def post_event(env, subscriber_id: int, order_id: str, event: str) -> None:
    with db.write(env.engine) as conn:
        custom_events.receive(conn, name=event, subscriber_id=subscriber_id,
                              properties={"order_id": order_id}, idempotency_key=order_id,
                              wake=jobs.wake)


def test_the_email_arrives_with_the_event_in_it(env, sink):
    workflow_id = mail_workflow(env, order_mail(env), "paid_a")
    subscriber_id = person(env, first_name="Anna")
    post_event(env, subscriber_id, "A-100", "paid_a")
    found = enrollment_of(env, workflow_id, subscriber_id)
    assert found["state"] == "done"
    (message,) = sink.messages
    assert message["Subject"] == "Order A-100"
    assert "order A-100 is paid" in message.get_body(("html",)).get_content()


def test_reentry_sends_once_per_occurrence(env, sink):
    workflow_id = mail_workflow(env, order_mail(env), "paid_b", entry={"reentry": "every_time"})
    subscriber_id = person(env)
    post_event(env, subscriber_id, "B-1", "paid_b")
    post_event(env, subscriber_id, "B-2", "paid_b")
    post_event(env, subscriber_id, "B-2", "paid_b")      # the same idempotency key: nothing new
    subjects = sorted(m["Subject"] for m in sink.messages)
    assert subjects == ["Order B-1", "Order B-2"]
    with db.read(env.engine) as conn:
        rows = conn.execute(select(deliveries.c.occurrence, deliveries.c.state).join(
            enrollments, enrollments.c.subscriber_id == deliveries.c.subscriber_id).where(
            enrollments.c.workflow_id == workflow_id)).all()
    assert {state for _, state in rows} == {"sent"}


def test_a_replayed_send_step_queues_nothing_new(env, sink):
    workflow_id = mail_workflow(env, order_mail(env), "paid_c")
    subscriber_id = person(env)
    post_event(env, subscriber_id, "C-1", "paid_c")
    found = enrollment_of(env, workflow_id, subscriber_id)
    with db.write(env.engine) as conn:            # as if the step's commit had been lost
        conn.execute(update(enrollments).where(enrollments.c.id == found["id"]).values(
            state="active", node_id="mail", visit=1, wake_at=utcnow(), active_key=None))
        conn.execute(steps.delete().where(steps.c.enrollment_id == found["id"]))
    with env.app.app_context():
        runner.run_due(env.engine, env.settings, "replayer", wake=jobs.wake)
    assert [m["Subject"] for m in sink.messages] == ["Order C-1"]


def test_workflow_campaigns_stay_out_of_the_campaign_list(env):
    message_id = order_mail(env)
    mail_workflow(env, message_id, "paid_d")
    with db.read(env.engine) as conn:
        assert all(c["message_id"] != message_id for c in campaigns.list_campaigns(conn))


def test_delivery_webhooks_get_each_sent_message(env, sink, receiver):
    """delivery.sent reaches a webhook, with the campaign, the person and the occurrence."""
    from tests.api.conftest import Api

    api = Api(env.app.test_client(), env.token("Administrator"))
    created = api("POST", "/webhooks", json={"url": receiver.url("/sent"), "events": ["delivery.sent"]})
    assert created.status_code == 201
    workflow_id = mail_workflow(env, order_mail(env), "paid_e")
    subscriber_id = person(env)
    post_event(env, subscriber_id, "E-1", "paid_e")
    found = enrollment_of(env, workflow_id, subscriber_id)
    (request,) = receiver.to("/sent")
    assert request.json["type"] == "delivery.sent"
    assert request.json["data"]["subscriber_id"] == subscriber_id
    assert request.json["data"]["occurrence"] == found["id"] * 1000 + 1


def test_an_email_delivered_enrolls_in_a_workflow_listening_for_that_campaign(env, sink):
    from altkraft_onprem.automation import workflows

    from .helpers import entered

    def campaign_of(workflow_id: int) -> int:
        with db.read(env.engine) as conn:
            version_id = workflows.get(conn, workflow_id)["version_id"]
            return workflows.get_version(conn, version_id)["campaigns"]["mail"]

    campaign_id = campaign_of(mail_workflow(env, order_mail(env), "paid_f"))
    quiet = campaign_of(mail_workflow(env, order_mail(env), "paid_g"))
    listener = published(env, chain(("g", "goal", {"name": "delivered"}), trigger={
        "type": "email_delivered", "campaign_id": campaign_id}))
    other = published(env, chain(("g", "goal", {"name": "elsewhere"}), trigger={
        "type": "email_delivered", "campaign_id": quiet}))
    subscriber_id = person(env)
    post_event(env, subscriber_id, "F-1", "paid_f")
    assert len(sink.messages) == 1
    assert entered(env, listener) == [(subscriber_id, {"campaign_id": campaign_id})]
    assert entered(env, other) == []


def test_a_workflow_s_own_delivered_emails_do_not_enroll_it_again(env, sink):
    """email_delivered for any email, entering every time, and itself sending: its own emails'
    delivery must not bring the person in again (a loop of emails). The frequency cap only
    bounds the loop should it come back."""
    from altkraft_onprem.automation import workflows

    from .helpers import entered

    first = mail_workflow(env, order_mail(env), "paid_h")
    with db.write(env.engine) as conn:
        thanks, _ = messages.create_message(conn, ACTOR, "Thanks", subject="Thanks",
                                            html="<p>Thank you.</p>")
    looping = published(env, chain(
        ("cap", "frequency_cap", {"max_emails": 4, "days": 1}),
        ("again", "send_email", {"message_id": thanks, "from_email": "shop@example.com"}),
        trigger={"type": "email_delivered"}, entry={"reentry": "every_time"}))
    try:
        subscriber_id = person(env)
        post_event(env, subscriber_id, "H-1", "paid_h")
        with db.read(env.engine) as conn:
            first_campaign = workflows.get_version(
                conn, workflows.get(conn, first)["version_id"])["campaigns"]["mail"]
        # The first workflow's email brings them in once; their own email sends once.
        assert entered(env, looping) == [(subscriber_id, {"campaign_id": first_campaign})]
        assert len(sink.messages) == 2
    finally:
        with db.write(env.engine) as conn:      # later tests' emails must not enroll anyone
            workflows.archive(conn, ACTOR, looping)


def test_preview_takes_a_sample_event(env):
    from tests.api.conftest import Api

    api = Api(env.app.test_client(), env.token("Administrator"))
    message_id = order_mail(env)
    answer = api("POST", f"/messages/{message_id}/preview",
                 json={"email": fields_of(env, person(env))["email"], "event": {"order_id": "S-9"}})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["subject"] == "Order S-9"
