"""Back-to-back messages on a PIPELINING session (one round trip each) into real aiosmtpd."""
from __future__ import annotations

from collections import Counter

import pytest

from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.delivery import mime, smtp
from altkraft_onprem.delivery.errors import DeliveryError
from altkraft_onprem.delivery.stream import Stream
from tests.campaigns.helpers import (
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
    start,
)
from tests.smtp_sink import SmtpSink


@pytest.fixture()
def sink():
    server = SmtpSink(pipelining=True).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_pools():
    yield
    for pool in smtp._pools.values():
        pool.close()
    smtp._pools.clear()


def _data(n: int) -> bytes:
    return mime.build(from_email="news@example.com", to_email=f"p{n}@example.net",
                      subject=f"Message {n}", text=f"Body {n}\n.leading dot", eight_bit=True).as_bytes()


def _stream(sink) -> tuple[smtp.RelayPool, Stream]:
    pool = smtp.RelayPool([sink.relay()])
    return pool, Stream(pool.checkout())


def _done(pool, stream):
    if stream.session.conn is not None:
        pool.checkin(stream.session)
    else:
        stream.session.relay.slots.release()


def test_each_message_ends_with_the_next_one(sink):
    pool, stream = _stream(sink)
    ends = []
    try:
        results = [stream.transfer("b@example.com", f"p{n}@example.net", _data(n), False,
                                   lambda: ends.append(len(sink.messages))) for n in range(3)]
        last = stream.finish(lambda: ends.append(len(sink.messages)))
    finally:
        _done(pool, stream)
    assert results[0] == (None, None)
    assert all(r.code == 250 for r, error in results[1:] if error is None) and last.code == 250
    assert [m.envelope_to for m in sink.messages] == [["p0@example.net"], ["p1@example.net"],
                                                       ["p2@example.net"]]
    assert ends == [0, 1, 2]            # each dot only after the hook, one message at a time
    assert ".leading dot" in sink.messages[0].get_content()


def test_a_refused_recipient_leaves_the_neighbours_alone(sink):
    pool, stream = _stream(sink)
    try:
        stream.transfer("b@example.com", "p0@example.net", _data(0), False, lambda: None)
        sink.fail("550 5.1.1 No such user", stage="rcpt")
        previous, error = stream.transfer("b@example.com", "p1@example.net", _data(1), False,
                                          lambda: None)
        assert previous.code == 250
        assert error.code == 550 and not error.temporary
        previous, error = stream.transfer("b@example.com", "p2@example.net", _data(2), False,
                                          lambda: None)
        assert previous is None and error is None
        assert stream.finish(lambda: None).code == 250
    finally:
        _done(pool, stream)
    assert [m.envelope_to[0] for m in sink.messages] == ["p0@example.net", "p2@example.net"]


def test_a_refusal_at_the_dot_belongs_to_the_previous_message(sink):
    pool, stream = _stream(sink)
    try:
        sink.fail("451 4.3.0 Try later", stage="data")
        stream.transfer("b@example.com", "p0@example.net", _data(0), False, lambda: None)
        previous, error = stream.transfer("b@example.com", "p1@example.net", _data(1), False,
                                          lambda: None)
        assert isinstance(previous, DeliveryError) and previous.code == 451 and previous.temporary
        assert error is None
        assert stream.finish(lambda: None).code == 250
    finally:
        _done(pool, stream)
    assert [m.envelope_to[0] for m in sink.messages] == ["p1@example.net"]


def test_a_drop_at_the_dot_leaves_the_previous_in_doubt(sink):
    pool, stream = _stream(sink)
    try:
        sink.drop()
        stream.transfer("b@example.com", "p0@example.net", _data(0), False, lambda: None)
        previous, error = stream.transfer("b@example.com", "p1@example.net", _data(1), False,
                                          lambda: None)
    finally:
        _done(pool, stream)
    assert previous.in_doubt and previous.temporary
    assert error.temporary and not error.in_doubt
    assert stream.session.conn is None


def test_a_failing_hook_ends_nothing(sink):
    pool, stream = _stream(sink)

    def refuse():
        raise RuntimeError("lease lost")

    try:
        stream.transfer("b@example.com", "p0@example.net", _data(0), False, lambda: None)
        with pytest.raises(RuntimeError):
            stream.finish(refuse)
    finally:
        _done(pool, stream)
    assert sink.messages == []


def test_campaign_over_a_pipelining_relay_reaches_everyone_once(env, sink, tmp_path):
    settings, _ = sending_settings(env, sink)
    people = [{"email": f"pipe{i}@example.net", "first_name": f"P{i}"} for i in range(40)]
    list_id, _ = make_list(env, "Pipelined", people)
    campaign_id = make_campaign(env, make_message(env), [list_id])
    sink.fail("451 4.3.0 Busy", times=2)                      # two retries on the way
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=2)
    counts = Counter(sink.recipients())
    assert set(counts) == {p["email"] for p in people} and set(counts.values()) == {1}
    result = progress(env, campaign_id)
    assert result["sent"] == 40 and result["state"] == "finished"
