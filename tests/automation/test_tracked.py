"""Engagement from a tracking flush: engagement triggers see human events only, webhooks get
every event with its machine flag, and nothing is recorded while nobody listens."""
from __future__ import annotations

from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.automation.models import outbox
from altkraft_onprem.db.types import utcnow
from tests.campaigns.helpers import record_events

from .helpers import chain, enrollment_of, person, published, uid


def event(kind: str, subscriber_id: int, campaign_id: int, **extra) -> dict:
    return {"at": utcnow(), "kind": kind, "campaign_id": campaign_id, "subscriber_id": subscriber_id,
            "version_id": 1, **extra}


def outbox_rows(env) -> int:
    with db.read(env.engine) as conn:
        return conn.execute(select(func.count()).select_from(outbox)).scalar_one()


def test_nothing_is_recorded_while_nobody_listens(env):
    before = outbox_rows(env)
    record_events(env, [event("open", person(env), 990001)])
    assert outbox_rows(env) == before


def test_a_human_click_enrolls_and_a_machine_click_does_not(env):
    campaign_id = 990000 + int(uid()[:4], 16)
    workflow_id = published(env, chain(("g", "goal", {"name": "clicked"}), trigger={
        "type": "email_clicked", "campaign_id": campaign_id}))
    human, scanner = person(env), person(env)
    record_events(env, [event("click", human, campaign_id, link_index=0),
                        event("click", scanner, campaign_id, link_index=0, machine=True,
                              reason="scanner")])
    assert enrollment_of(env, workflow_id, human)["state"] == "done"
    assert enrollment_of(env, workflow_id, human)["event"]["link_index"] == 0
    with db.read(env.engine) as conn:
        from altkraft_onprem.automation.workflow_models import enrollments
        assert conn.execute(select(enrollments.c.id).where(
            enrollments.c.workflow_id == workflow_id, enrollments.c.subscriber_id == scanner)).first() is None


def test_opens_reach_webhooks_with_the_machine_flag(env, receiver):
    from tests.api.conftest import Api

    api = Api(env.app.test_client(), env.token("Administrator"))
    created = api("POST", "/webhooks", json={"url": receiver.url("/opens"), "events": ["email.opened"]})
    assert created.status_code == 201
    reader, proxy = person(env), person(env)
    record_events(env, [event("open", reader, 990002),
                        event("open", proxy, 990002, machine=True, reason="proxy")])
    bodies = sorted((r.json["data"]["subscriber_id"], r.json["data"]["machine"])
                    for r in receiver.to("/opens"))
    assert bodies == sorted([(reader, False), (proxy, True)])
    assert {r.json["type"] for r in receiver.to("/opens")} == {"email.opened"}
