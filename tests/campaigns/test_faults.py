"""Relay faults during a campaign (real SMTP sink): 4xx, replies lost to a drop, 5xx, relay
down, unsubscribes."""
from __future__ import annotations

from collections import Counter

import pytest

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import service as audience
from altkraft_onprem.campaigns import actions
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from tests.campaigns.helpers import (
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
    start,
)
from tests.smtp_sink import SmtpSink

ACTOR = system_actor("test")
_lists = iter(range(1000))


@pytest.fixture()
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


def campaign_for(env, people: int, **settings_extra):
    def build(sink):
        settings, _ = sending_settings(env, sink, **settings_extra)
        n = next(_lists)
        list_id, ids = make_list(env, f"Faults {n}", [{"email": f"f{n}-{i}@example.org"}
                                                       for i in range(people)])
        campaign_id = make_campaign(env, make_message(env), [list_id])
        start(env, settings, campaign_id)
        return settings, campaign_id, ids
    return build


def test_temporary_refusals_are_retried_until_sent(env, sink):
    settings, campaign_id, _ = campaign_for(env, 6)(sink)
    sink.fail("451 4.3.0 Try again later", times=4)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert found["state"] == "finished" and found["sent"] == 6
    assert all(n == 1 for n in Counter(sink.recipients()).values())


def test_421_closing_the_session_is_retried(env, sink):
    settings, campaign_id, _ = campaign_for(env, 5)(sink)
    sink.fail("421 4.7.0 Too many connections, closing", times=2)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert found["state"] == "finished" and found["sent"] == 5
    assert len(sink.recipients()) == 5


@pytest.fixture(params=[False, True], ids=["stepwise", "pipelined"])
def either_sink(request):
    """A sink with and without PIPELINING: the two code paths that read a dot's reply."""
    server = SmtpSink(pipelining=request.param).start()
    yield server
    server.stop()


def test_a_reply_lost_after_the_dot_leaves_the_row_in_doubt(env, either_sink):
    """The relay keeps the message, then drops the connection before answering: the sender
    cannot know it was accepted. Sent again, the person would get it twice."""
    settings, campaign_id, _ = campaign_for(env, 8)(either_sink)
    either_sink.drop(times=3, keep=True)
    run_campaign(settings, env.engine, campaign_id, processes=2)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["in_doubt"]) == ("finished", 5, 3)
    assert sorted(Counter(either_sink.recipients()).values()) == [1] * 8
    with db.read(env.engine) as conn:
        replies = [row["reply"] for row in campaigns.deliveries_page(conn, campaign_id, "in_doubt")]
    assert len(replies) == 3
    assert all("dropped the connection" in r and "not sent again" in r for r in replies)


def test_a_reply_lost_after_the_dot_is_retried_when_the_admin_prefers_at_least_once(env, sink):
    settings, campaign_id, _ = campaign_for(env, 8, delivery__retry_lost_replies=True)(sink)
    sink.drop(times=3, keep=True)
    run_campaign(settings, env.engine, campaign_id, processes=2)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["in_doubt"]) == ("finished", 8, 0)
    # the trade-off: those three people got it twice
    assert sorted(Counter(sink.recipients()).values()) == [1] * 5 + [2] * 3


def test_a_connection_dropped_without_keeping_the_message_is_in_doubt_too(env, sink):
    """The sender cannot tell this drop from the one above: same outcome, nobody got it twice."""
    settings, campaign_id, _ = campaign_for(env, 6)(sink)
    sink.drop(times=2)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["in_doubt"]) == ("finished", 4, 2)
    assert sorted(Counter(sink.recipients()).values()) == [1] * 4


def test_permanent_refusal_fails_that_row_only(env, sink):
    settings, campaign_id, _ = campaign_for(env, 4)(sink)
    sink.fail("550 5.1.1 Mailbox unknown", times=1, stage="rcpt")
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"], found["failed"]) == ("finished", 3, 1)
    with db.read(env.engine) as conn:
        [failed] = campaigns.deliveries_page(conn, campaign_id, "failed")
    assert "550 5.1.1 Mailbox unknown" in failed["reply"]


def test_gives_up_after_the_configured_age(env, sink):
    settings, campaign_id, _ = campaign_for(env, 1, delivery__retry_max_hours=0.0000001)(sink)
    sink.fail("451 4.3.0 Try again later", times=50)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert (found["state"], found["failed"]) == ("finished", 1)


def test_relay_down_pauses_with_the_reason(env, sink):
    settings, campaign_id, _ = campaign_for(env, 3)(sink)
    sink.stop()
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert found["state"] == "paused" and found["remaining"] == 3
    with db.read(env.engine) as conn:
        reason = campaigns.get_campaign(conn, campaign_id)["pause_reason"]
    assert "no SMTP relay reachable" in reason and str(sink.port) in reason


def test_resume_after_relay_returns_finishes(env, sink):
    settings, campaign_id, _ = campaign_for(env, 3)(sink)
    sink.stop()
    run_campaign(settings, env.engine, campaign_id, processes=1)
    sink.start()
    with db.write(env.engine) as conn:
        campaigns.resume(conn, ACTOR, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert (found["state"], found["sent"]) == ("finished", 3)
    assert len(sink.recipients()) == 3


def test_unsubscribe_during_the_send_stops_that_message(env, sink):
    settings, campaign_id, ids = campaign_for(env, 6, delivery__batch_size=1)(sink)
    last = ids[-1]

    def unsubscribe_last(_message):
        if len(sink.messages) == 1:
            with db.write(env.engine) as conn:
                audience.unsubscribe(conn, last)
    sink.on_message = unsubscribe_last
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert (found["sent"], found["skipped"], found["remaining"]) == (5, 1, 0)
    with db.read(env.engine) as conn:
        email = audience.render_context(conn, [last])[last]["email"]
    assert email not in sink.recipients()


def test_pause_stops_between_batches_and_resume_finishes(env, sink):
    settings, campaign_id, _ = campaign_for(env, 6, delivery__batch_size=2)(sink)

    def pause_after_first(_message):
        if len(sink.messages) == 1:
            with db.write(env.engine) as conn:
                campaigns.pause(conn, ACTOR, campaign_id)
    sink.on_message = pause_after_first
    run_campaign(settings, env.engine, campaign_id, processes=1)
    paused = progress(env, campaign_id)
    assert paused["state"] == "paused" and paused["sent"] == 2 and paused["remaining"] == 4
    sink.on_message = None
    with db.write(env.engine) as conn:
        campaigns.resume(conn, ACTOR, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    assert progress(env, campaign_id)["sent"] == 6
    assert len(set(sink.recipients())) == 6


def test_cancel_marks_unsent_rows_cancelled(env, sink):
    settings, campaign_id, _ = campaign_for(env, 4)(sink)
    actions.perform(ACTOR, settings, campaign_id, "cancel", engine=env.engine)
    found = progress(env, campaign_id)
    assert (found["state"], found["cancelled"], found["remaining"]) == ("cancelled", 4, 0)
    assert sink.messages == []


def test_cancel_during_the_send_leaves_every_row_final(env, sink):
    settings, campaign_id, _ = campaign_for(env, 6, delivery__batch_size=3)(sink)

    def cancel_after_first(_message):
        if len(sink.messages) == 1:
            with db.write(env.engine) as conn:
                campaigns.cancel(conn, ACTOR, campaign_id)
    sink.on_message = cancel_after_first
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = progress(env, campaign_id)
    assert found["state"] == "cancelled" and found["remaining"] == 0
    assert found["sent"] + found["cancelled"] == 6 and found["sent"] == len(sink.messages)


def test_unreadable_dkim_key_pauses_with_the_reason(env, sink):
    settings, campaign_id, _ = campaign_for(env, 2)(sink)
    broken = [dict(settings["dkim.keys"][0], key_file="/nonexistent/dkim.pem")]
    run_campaign(settings.replace(dkim__keys=broken), env.engine, campaign_id, processes=2)
    found = progress(env, campaign_id)
    assert found["state"] == "paused" and found["remaining"] == 2
    with db.read(env.engine) as conn:
        assert "/nonexistent/dkim.pem" in campaigns.get_campaign(conn, campaign_id)["pause_reason"]
