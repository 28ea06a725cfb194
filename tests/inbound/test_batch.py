"""The pipeline applies a batch of verdicts in a few set-based statements: it must leave
exactly what applying them one by one leaves; a message that cannot be applied fails alone;
workers lease what they judge and take over the leases of a worker that died."""
from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from sqlalchemy import func, insert, select

from altkraft_onprem import db
from altkraft_onprem.access.models import audit_log
from altkraft_onprem.audience.models import subscriber_activity, subscribers, suppressions
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.inbound import intake, service
from altkraft_onprem.inbound.addresses import Recogniser
from altkraft_onprem.inbound.models import alerts, bounces, complaints, inbound_messages
from altkraft_onprem.inbound.pipeline import judge
from altkraft_onprem.reports.feedback import campaign_feedback
from altkraft_onprem.tracking.tokens import tracking_key
from bench.inbound import BOUNCE_DOMAIN, FBL, make_messages
from tests.conftest import free_port
from tests.inbound.test_crash import _environment

DOMAINS = ("gmail.com", "mail.ru", "example.net")


@pytest.fixture(scope="module")
def settings(env):
    return env.settings.replace(delivery__bounce_domain=BOUNCE_DOMAIN, inbound__fbl_addresses=[FBL])


def people(env, prefix: str, count: int) -> list[tuple[int, str]]:
    now = utcnow()
    rows = [{"email": f"{prefix}{i}@{DOMAINS[i % 3]}", "email_domain": DOMAINS[i % 3], "state": "active",
             "custom": {}, "source": "test", "created_at": now, "updated_at": now} for i in range(count)]
    with db.write(env.engine) as conn:
        ids = conn.execute(insert(subscribers).returning(subscribers.c.id, sort_by_parameter_order=True),
                           rows).scalars().all()
    return list(zip(ids, (r["email"] for r in rows), strict=True))


def store(env, messages) -> list[int]:
    with db.write(env.engine) as conn:
        return [intake.store(conn, data, source="replay", rcpt=rcpt) for rcpt, data, _ in messages]


def one_by_one(env, settings, ids: list[int]) -> None:
    """What the pipeline did before batches: each verdict applied in its own savepoint."""
    recogniser = Recogniser(settings)
    with db.write(env.engine) as conn:
        for inbound_id in ids:
            row = conn.execute(select(inbound_messages.c.rcpt, inbound_messages.c.raw)
                               .where(inbound_messages.c.id == inbound_id)).one()
            verdict = judge(conn, settings, recogniser, row.rcpt, intake.raw_message(row.raw))
            assert service.apply(conn, settings, inbound_id, verdict)


def _anonymous(email: str, found: dict) -> str:
    """A person's outcome without their address (diagnostics and reasons may quote it)."""
    return repr(found).replace(email, "<address>")


def outcome(env, crowd: list[tuple[int, str]], ids: list[int]) -> dict:
    """Everything the messages left, per person by position (not by id or address)."""
    with db.read(env.engine) as conn:
        per_person = []
        for subscriber_id, email in crowd:
            entry = conn.execute(select(suppressions.c.source, suppressions.c.reason)
                                 .where(suppressions.c.email == email)).first()
            per_person.append(_anonymous(email, {
                "state": conn.execute(select(subscribers.c.state).where(subscribers.c.id == subscriber_id)).scalar(),
                "suppression": tuple(entry) if entry else None,
                "bounces": conn.execute(select(bounces.c.campaign_id, bounces.c.bounce_class, bounces.c.rule,
                                               bounces.c.status, bounces.c.suppressed, bounces.c.provider)
                                        .where(bounces.c.subscriber_id == subscriber_id)
                                        .order_by(bounces.c.inbound_id)).all(),
                "complaints": conn.execute(select(complaints.c.campaign_id, complaints.c.feedback_type,
                                                  complaints.c.provider)
                                           .where(complaints.c.subscriber_id == subscriber_id)
                                           .order_by(complaints.c.inbound_id)).all(),
                "activity": conn.execute(select(subscriber_activity.c.kind, subscriber_activity.c.details)
                                         .where(subscriber_activity.c.subscriber_id == subscriber_id)
                                         .order_by(subscriber_activity.c.id)).all()}))
        messages = [(state, result, {k: v for k, v in json.loads(detail).items() if k != "recipient"})
                    for state, result, detail in conn.execute(
                        select(inbound_messages.c.state, inbound_messages.c.outcome, inbound_messages.c.detail)
                        .where(inbound_messages.c.id.in_(ids)).order_by(inbound_messages.c.id))]
    return {"people": per_person, "messages": messages}


def totals(env) -> dict:
    """Figures shared by everyone: the report roll-up, alerts, audit entries."""
    with db.read(env.engine) as conn:
        f = campaign_feedback.c
        return {"feedback": dict(((r[0], r[1], r[2], r[3]), r[4]) for r in conn.execute(
                    select(f.campaign_id, f.provider, f.kind, f.bounce_class, func.sum(f.count))
                    .group_by(f.campaign_id, f.provider, f.kind, f.bounce_class))),
                "alerts": dict(((r[0], r[1], r[2]), r[3]) for r in conn.execute(
                    select(alerts.c.kind, alerts.c.campaign_id, alerts.c.provider, alerts.c.count))),
                "audit": conn.execute(select(func.count()).select_from(audit_log).where(
                    audit_log.c.action == "suppression.add")).scalar_one()}


def delta(before: dict, after: dict) -> dict:
    out = {}
    for name in ("feedback", "alerts"):
        keys = set(before[name]) | set(after[name])
        out[name] = {k: after[name].get(k, 0) - before[name].get(k, 0) for k in keys
                     if after[name].get(k, 0) != before[name].get(k, 0)}
    out["audit"] = after["audit"] - before["audit"]
    return out


# 40 people: each gets the same kind of report from four campaigns (soft bounces add up to a
# suppression within the batch); 37: kinds mix per person (a bounce, then a complaint).
@pytest.mark.parametrize("crowd_size", [40, 37])
def test_a_batch_leaves_exactly_what_one_by_one_leaves(env, settings, crowd_size, caplog):
    key = tracking_key(settings)
    batched, single = people(env, f"b{crowd_size}x", crowd_size), people(env, f"s{crowd_size}x", crowd_size)
    batched_ids = store(env, make_messages(key, batched, 4 * crowd_size))
    single_ids = store(env, make_messages(key, single, 4 * crowd_size))

    start = totals(env)
    with caplog.at_level(logging.WARNING, logger="altkraft_onprem.inbound.service"):
        applied = service.process_pending(env.engine, settings, ids=batched_ids)
    assert len(applied) == len(batched_ids)
    assert "one by one" not in caplog.text          # the batch went through as a batch
    middle = totals(env)
    one_by_one(env, settings, single_ids)
    end = totals(env)

    got, want = outcome(env, batched, batched_ids), outcome(env, single, single_ids)
    assert got == want
    assert delta(start, middle) == delta(middle, end)
    seen = " ".join(got["people"])
    assert "'state': 'bounced'" in seen and "'state': 'complained'" in seen
    if crowd_size == 40:
        assert "soft bounces in 30 days" in seen


def test_a_message_that_cannot_be_applied_fails_alone(env, settings):
    """A stored person whose address no longer validates: suppressing them fails, the batch
    goes one by one, and only that message is marked failed."""
    key = tracking_key(settings)
    crowd = people(env, "failing", 20)
    with db.write(env.engine) as conn:
        conn.execute(subscribers.update().where(subscribers.c.id == crowd[0][0]).values(email="not an address"))
    messages = make_messages(key, crowd, 20)
    ids = store(env, messages)
    service.process_pending(env.engine, settings, ids=ids)
    with db.read(env.engine) as conn:
        states = dict(conn.execute(select(inbound_messages.c.id, inbound_messages.c.state)
                                   .where(inbound_messages.c.id.in_(ids))).all())
    assert states[ids[0]] == "failed"
    assert "failed" not in {states[i] for i in ids[1:]}
    assert "new" not in states.values()


LEASE = """
import sys
from altkraft_onprem import config, db
from altkraft_onprem.inbound import service
engine = db.build_engine(config.load().database_url)
print(len(service._lease(engine, int(sys.argv[1]))), flush=True)
sys.stdin.readline()
"""


def _waiting(env) -> int:
    with db.read(env.engine) as conn:
        return conn.execute(select(func.count()).select_from(inbound_messages).where(
            inbound_messages.c.state == "new")).scalar_one()


def test_workers_lease_what_they_judge_and_take_over_a_dead_ones(env, settings):
    service.process_pending(env.engine, settings, limit=10_000)        # whatever earlier tests left
    crowd = people(env, "lease", 30)
    store(env, make_messages(tracking_key(settings), crowd, 30))
    other = subprocess.Popen([sys.executable, "-c", LEASE, "20"], env=_environment(env, free_port()),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "20"
        # The other worker is alive: its 20 are its own.
        assert len(service.process_pending(env.engine, settings)) == 10
        assert service.process_pending(env.engine, settings) == []
        assert _waiting(env) == 20
    finally:
        other.stdin.close()
        other.wait(10)
    # It is gone: its leases are free at once.
    assert len(service.process_pending(env.engine, settings)) == 20
    assert _waiting(env) == 0

