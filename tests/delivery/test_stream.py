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


class _Results(dict):
    """What `settle` was told, by tag, in the order it was told."""

    def __call__(self, tag, result) -> None:
        assert tag not in self, f"{tag} settled twice"
        self[tag] = result


def _stream(sink, before_dot=lambda: None) -> tuple[smtp.RelayPool, Stream, _Results]:
    pool = smtp.RelayPool([sink.relay()])
    results = _Results()
    return pool, Stream(pool.checkout(), results, before_dot), results


def _send(stream, n: int, rcpt: str | None = None) -> None:
    stream.send(n, "b@example.com", rcpt or f"p{n}@example.net", _data(n), False)


def _done(pool, stream):
    if stream.session.conn is not None:
        pool.checkin(stream.session)
    else:
        stream.session.relay.slots.release()


def test_each_message_ends_with_the_next_one(sink):
    ends = []
    pool, stream, results = _stream(sink, lambda: ends.append(len(sink.messages)))
    try:
        for n in range(3):
            _send(stream, n)
            # Written, not waited for: this message's result comes with the next one.
            assert n not in results and stream.busy
        stream.finish()
    finally:
        _done(pool, stream)
    assert list(results) == [0, 1, 2] and all(r.code == 250 for r in results.values())
    assert not stream.busy
    assert [m.envelope_to for m in sink.messages] == [["p0@example.net"], ["p1@example.net"],
                                                       ["p2@example.net"]]
    assert ends == [0, 1, 2]            # each dot only after the hook, one message at a time
    assert ".leading dot" in sink.messages[0].get_content()


def test_a_refused_recipient_leaves_the_neighbours_alone(sink):
    sink.fail("550 5.1.1 No such user", stage="rcpt", rcpt="p1@example.net")
    pool, stream, results = _stream(sink)
    try:
        for n in range(3):
            _send(stream, n)
        stream.finish()
    finally:
        _done(pool, stream)
    assert results[0].code == 250 and results[2].code == 250
    assert results[1].code == 550 and not results[1].temporary
    assert [m.envelope_to[0] for m in sink.messages] == ["p0@example.net", "p2@example.net"]


def test_a_refusal_at_the_dot_belongs_to_its_message(sink):
    sink.fail("451 4.3.0 Try later", stage="data", rcpt="p0@example.net")
    pool, stream, results = _stream(sink)
    try:
        _send(stream, 0)
        _send(stream, 1)
        stream.finish()
    finally:
        _done(pool, stream)
    assert isinstance(results[0], DeliveryError) and results[0].code == 451 and results[0].temporary
    assert results[1].code == 250
    assert [m.envelope_to[0] for m in sink.messages] == ["p1@example.net"]


def test_a_drop_at_the_dot_leaves_that_message_in_doubt_and_the_next_one_retried(sink):
    sink.drop(rcpt="p0@example.net")
    pool, stream, results = _stream(sink)
    try:
        for n in range(3):
            _send(stream, n)            # the third one goes on a new connection
        stream.finish()
    finally:
        _done(pool, stream)
    assert results[0].in_doubt and results[0].temporary
    assert results[1].temporary and not results[1].in_doubt
    assert results[2].code == 250
    assert [m.envelope_to[0] for m in sink.messages] == ["p2@example.net"]


def test_a_bad_address_fails_alone(sink):
    pool, stream, results = _stream(sink)
    try:
        _send(stream, 0)
        _send(stream, 1, rcpt="evil@example.net>\r\nRCPT TO:<other@example.net")
        _send(stream, 2)
        stream.finish()
    finally:
        _done(pool, stream)
    assert "not a usable SMTP address" in results[1].message and not results[1].temporary
    assert results[0].code == 250 and results[2].code == 250
    assert sorted(sink.recipients()) == ["p0@example.net", "p2@example.net"]


def test_a_failing_hook_ends_nothing(sink):
    def refuse():
        raise RuntimeError("lease lost")

    pool, stream, results = _stream(sink, refuse)
    try:
        _send(stream, 0)
        with pytest.raises(RuntimeError):
            stream.finish()
    finally:
        _done(pool, stream)
    assert sink.messages == [] and results == {} and not stream.busy


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
