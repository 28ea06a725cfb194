"""Split tests in the ledger and the sender: assignment, held rows, winner rules, full send."""
from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns import actions, jobs, splittest
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.campaigns.models import deliveries, split_tests
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, ServiceError
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    progress,
    record_events,
    sending_settings,
    start,
)

SUBJECTS = ["Вариант A", "Вариант B", "Вариант C"]


def _people(count: int) -> list[dict]:
    tag = uuid.uuid4().hex[:6]
    return [{"email": f"split{tag}-{i}@example.net", "first_name": f"P{i}"} for i in range(count)]


def _split(variants: int = 2, percent: int = 20, metric: str = "opens", wait: float = 4) -> dict:
    return {"variants": [{"subject": SUBJECTS[i] if i < 3 else f"S{i}"} for i in range(variants)],
            "test_percent": percent, "metric": metric, "wait_hours": wait}


def _rows(env, campaign_id: int) -> list[dict]:
    with db.read(env.engine) as conn:
        return [dict(r) for r in conn.execute(select(deliveries).where(
            deliveries.c.campaign_id == campaign_id).order_by(deliveries.c.id)).mappings()]


@pytest.fixture(scope="module")
def settings(env, sink):
    return sending_settings(env, sink)[0]


@pytest.fixture(scope="module")
def app(env, settings):
    """Jobs run in an app whose settings name the sink as relay (the queue is immediate)."""
    from altkraft_onprem import tasks
    from altkraft_onprem.app import create_app

    app = create_app(settings, engine=env.engine)
    tasks.bind_app(app)
    with app.app_context():
        yield app
    tasks.bind_app(env.app)


@pytest.fixture(scope="module")
def audience(env):
    list_id, ids = make_list(env, "Split audience", _people(100))
    return {"list_id": list_id, "ids": ids, "message_id": make_message(env)}


def _started(env, settings, audience, **split) -> int:
    campaign_id = make_campaign(env, audience["message_id"], [audience["list_id"]],
                                split_test=_split(**split))
    start(env, settings, campaign_id)
    return campaign_id


def test_test_portion_is_split_evenly_and_the_rest_held(env, settings, audience):
    campaign_id = _started(env, settings, audience, variants=2, percent=20)
    rows = _rows(env, campaign_id)
    assert len(rows) == 100
    tested = [r for r in rows if r["test_group"]]
    assert Counter(r["variant"] for r in tested) == {1: 10, 2: 10}
    assert all(r["state"] == "queued" for r in tested)
    held = [r for r in rows if not r["test_group"]]
    assert len(held) == 80 and {(r["state"], r["variant"]) for r in held} == {("held", 0)}
    found = progress(env, campaign_id)
    assert (found["total"], found["held"], found["remaining"]) == (100, 80, 100)


def test_five_variants_share_the_test_portion(env, settings, audience):
    campaign_id = _started(env, settings, audience, variants=5, percent=30)
    tested = [r for r in _rows(env, campaign_id) if r["test_group"]]
    assert Counter(r["variant"] for r in tested) == {1: 6, 2: 6, 3: 6, 4: 6, 5: 6}


def test_the_test_portion_is_chosen_at_random(env, settings, audience):
    picks = []
    for _ in range(2):
        campaign_id = _started(env, settings, audience, variants=2, percent=20)
        picks.append({r["subscriber_id"]: r["variant"] for r in _rows(env, campaign_id)
                      if r["test_group"]})
    # 20 of 100 twice the same (or the first 20 by id) happens with odds of about 1 in 5e20.
    assert set(picks[0]) != set(picks[1])
    assert set(picks[0]) != set(sorted(audience["ids"])[:20])


def test_a_tiny_audience_still_gives_every_variant_someone():
    assert splittest.test_size(3, 3, 10) == 3
    assert splittest.test_size(2, 3, 10) == 2
    assert splittest.test_size(1000, 2, 20) == 200
    assert splittest.test_size(1000, 2, 100) == 1000


def test_held_rows_are_never_sent_before_the_winner(env, app, settings, audience, sink):
    sink.clear()
    campaign_id = _started(env, settings, audience, variants=2, percent=10)
    run_campaign(settings, env.engine, campaign_id, processes=2)
    assert len(sink.recipients()) == 10
    found = progress(env, campaign_id)
    assert found["state"] == "running"          # waiting for the winner, not finished
    assert (found["sent"], found["held"]) == (10, 90)
    jobs.start_due()                            # the minute tick does not send held rows either
    run_campaign(settings, env.engine, campaign_id)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["held"]) == ("running", 10, 90)
    with db.read(env.engine) as conn:
        assert splittest.due(conn) == []        # four hours to go


# --- choosing the winner --------------------------------------------------------------------

def _figure(variant, delivered, opens, clicks):
    return {"variant": variant, "delivered": delivered, "unique_opens": opens,
            "unique_clicks": clicks}


@pytest.mark.parametrize("metric,expected", [("opens", 1), ("clicks", 2), ("click_to_open", 3)])
def test_each_metric_compares_its_own_rate(metric, expected):
    items = [_figure(1, 100, 50, 5), _figure(2, 100, 40, 8), _figure(3, 100, 10, 6)]
    assert splittest.choose(items, metric) == expected


def test_rates_not_counts_decide():
    assert splittest.choose([_figure(1, 100, 30, 0), _figure(2, 50, 20, 0)], "opens") == 2


def test_a_tie_goes_to_more_delivered_then_the_earlier_variant():
    assert splittest.choose([_figure(1, 10, 5, 0), _figure(2, 20, 10, 0)], "opens") == 2
    assert splittest.choose([_figure(1, 10, 5, 0), _figure(2, 10, 5, 0)], "opens") == 1
    assert splittest.choose([_figure(1, 10, 0, 0), _figure(2, 10, 0, 0)], "click_to_open") == 1


def _events(env, campaign_id: int, subscriber_ids: list[int], kind: str, machine: bool = False):
    with db.write(env.engine) as conn:
        version = conn.execute(select(split_tests.c.variants).where(
            split_tests.c.campaign_id == campaign_id)).scalar()[0]["version_id"]
    # an hour after delivery: not a link scanner's click within seconds of it
    record_events(env, [{
            "at": utcnow() + timedelta(hours=1), "kind": kind, "campaign_id": campaign_id,
            "subscriber_id": sid,
            "version_id": version, "link_index": 0 if kind == "click" else None,
            "machine": machine, "reason": "mpp" if machine else None, "user_agent": "test",
            "ip": "127.0.0.1"} for sid in subscriber_ids])


def _sent_test(env, settings, audience, metric: str) -> tuple[int, dict[int, list[int]]]:
    campaign_id = _started(env, settings, audience, variants=2, percent=20, metric=metric)
    run_campaign(settings, env.engine, campaign_id)
    by_variant: dict[int, list[int]] = {1: [], 2: []}
    for row in _rows(env, campaign_id):
        if row["test_group"]:
            by_variant[row["variant"]].append(row["subscriber_id"])
    return campaign_id, by_variant


def test_machine_opens_do_not_win(env, settings, audience):
    campaign_id, group = _sent_test(env, settings, audience, "opens")
    _events(env, campaign_id, group[1][:3], "open")
    _events(env, campaign_id, group[2][:8], "open", machine=True)     # Apple MPP prefetches
    _events(env, campaign_id, group[2][:2], "open")
    with db.read(env.engine) as conn:
        figures = splittest.figures(conn, campaign_id)
    assert [(f["delivered"], f["unique_opens"], f["open_rate"]) for f in figures] == \
        [(10, 3, 30.0), (10, 2, 20.0)]
    with db.write(env.engine) as conn:
        assert splittest.decide(conn, None, campaign_id) == 1


def test_clicks_metric_and_the_release_with_the_winner(env, settings, audience):
    campaign_id, group = _sent_test(env, settings, audience, "clicks")
    _events(env, campaign_id, group[1][:6], "open")
    _events(env, campaign_id, group[1][:5], "click", machine=True)    # a link scanner
    _events(env, campaign_id, group[2][:2], "open")
    _events(env, campaign_id, group[2][:2], "click")
    with db.write(env.engine) as conn:
        assert splittest.decide(conn, None, campaign_id) == 2
    rows = _rows(env, campaign_id)
    rest = [r for r in rows if not r["test_group"]]
    assert {(r["state"], r["variant"]) for r in rest} == {("queued", 2)}
    with db.read(env.engine) as conn:
        test = splittest.get(conn, campaign_id)
    assert (test["state"], test["winner"], test["decided_by"]) == ("decided", 2, "automatic")
    assert [r["unique_clicks"] for r in test["results"]] == [0, 2]


def test_click_to_open_metric(env, settings, audience):
    campaign_id, group = _sent_test(env, settings, audience, "click_to_open")
    _events(env, campaign_id, group[1][:8], "open")
    _events(env, campaign_id, group[1][:3], "click")                  # 3 of 8 openers
    _events(env, campaign_id, group[2][:2], "open")
    _events(env, campaign_id, group[2][:1], "click")                  # 1 of 2 openers
    with db.write(env.engine) as conn:
        assert splittest.decide(conn, None, campaign_id) == 2


def test_a_person_overrides_the_metric_once(env, settings, audience):
    campaign_id, group = _sent_test(env, settings, audience, "opens")
    _events(env, campaign_id, group[2][:5], "open")
    assert actions.choose_winner(ACTOR, campaign_id, 1, engine=env.engine) == 1
    with db.read(env.engine) as conn:
        test = splittest.get(conn, campaign_id)
    assert (test["winner"], test["decided_by"]) == (1, ACTOR.label)
    with pytest.raises(Conflict, match="already chosen: variant A"):
        actions.choose_winner(ACTOR, campaign_id, 2, engine=env.engine)


def test_an_unknown_variant_is_refused(env, settings, audience):
    campaign_id, _ = _sent_test(env, settings, audience, "opens")
    with pytest.raises(ServiceError) as info:
        actions.choose_winner(ACTOR, campaign_id, 3, engine=env.engine)
    assert info.value.field == "variant"


def test_cancel_cancels_the_held_rows(env, settings, audience):
    campaign_id = _started(env, settings, audience, variants=2, percent=20)
    actions.perform(ACTOR, settings, campaign_id, "cancel", engine=env.engine)
    states = Counter(r["state"] for r in _rows(env, campaign_id))
    assert states["held"] == 0 and states["cancelled"] >= 80


# --- the whole thing through the SMTP sink --------------------------------------------------

def test_full_split_send_each_person_once_and_the_rest_gets_the_winner(env, settings, sink):
    sink.clear()
    list_id, ids = make_list(env, "Full split", _people(40))
    other = make_message(env, subject="Совсем другое письмо")
    campaign_id = make_campaign(env, make_message(env), [list_id], split_test={
        "variants": [{"subject": "Subject A"},
                     {"message_id": other, "from_name": "Отдел B"}],
        "test_percent": 50, "metric": "opens", "wait_hours": 0})
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=2)
    assert progress(env, campaign_id)["state"] == "finished"
    received = sink.recipients()
    assert len(received) == len(set(received)) == 40
    rows = {r["subscriber_id"]: r for r in _rows(env, campaign_id)}
    with db.read(env.engine) as conn:
        test = splittest.get(conn, campaign_id)
    assert test["winner"] == 1                         # no opens at all: the tie goes to A
    subjects = {1: "Subject A", 2: "Совсем другое письмо"}
    with db.read(env.engine) as conn:
        address = dict(conn.execute(select(subscribers.c.email, subscribers.c.id).where(
            subscribers.c.id.in_(ids))).all())
    counts = Counter()
    for message in sink.messages:
        row = rows[address[message.envelope_to[0]]]
        assert str(message["Subject"]) == subjects[row["variant"]]
        if row["variant"] == 2:
            assert "Отдел B" in str(message["From"])
        counts[(row["test_group"], row["variant"])] += 1
    assert counts == {(True, 1): 10, (True, 2): 10, (False, 1): 20}


def test_the_winner_job_decides_when_the_wait_is_over(env, app, settings, audience, sink):
    campaign_id = _started(env, settings, audience, variants=2, percent=20)
    run_campaign(settings, env.engine, campaign_id)
    assert jobs.decide_due() == []                  # four hours to go
    with db.write(env.engine) as conn:
        conn.execute(update(split_tests).where(split_tests.c.campaign_id == campaign_id)
                     .values(decide_at=utcnow() - timedelta(minutes=1)))
    assert campaign_id in jobs.decide_due()         # decides, then sends (immediate queue)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["held"]) == ("finished", 100, 0)


def test_a_whole_audience_test_finishes_and_is_still_decided(env, app, settings, audience):
    campaign_id = _started(env, settings, audience, variants=2, percent=100)
    run_campaign(settings, env.engine, campaign_id)
    assert progress(env, campaign_id)["state"] == "finished"
    with db.write(env.engine) as conn:
        conn.execute(update(split_tests).where(split_tests.c.campaign_id == campaign_id)
                     .values(decide_at=utcnow()))
    assert campaign_id in jobs.decide_due()
    with db.read(env.engine) as conn:
        assert splittest.get(conn, campaign_id)["state"] == "decided"


def test_a_scheduled_split_test_starts_with_its_test_portion(env, app, settings, audience):
    campaign_id = make_campaign(env, audience["message_id"], [audience["list_id"]],
                                split_test=_split(percent=10), schedule_at=utcnow() - timedelta(minutes=1))
    # the start job queued for a time already past runs at once (immediate queue)
    actions.perform(ACTOR, settings, campaign_id, "schedule", engine=env.engine)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["held"]) == ("running", 10, 90)


def test_a_winner_picked_while_paused_goes_out_on_resume(env, app, settings, audience):
    campaign_id = _started(env, settings, audience, variants=2, percent=10)
    run_campaign(settings, env.engine, campaign_id)
    actions.perform(ACTOR, settings, campaign_id, "pause", engine=env.engine)
    actions.choose_winner(ACTOR, campaign_id, 2, engine=env.engine)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["held"], found["remaining"]) == ("paused", 10, 0, 90)
    actions.perform(ACTOR, settings, campaign_id, "resume", engine=env.engine)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"]) == ("finished", 100)
    rest = [r for r in _rows(env, campaign_id) if not r["test_group"]]
    assert {(r["state"], r["variant"]) for r in rest} == {("sent", 2)}
