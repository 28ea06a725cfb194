"""8BITMIME bodies (no quoted-printable pass) and the hook before the final dot of DATA."""
from __future__ import annotations

import email
import email.policy

import dkim
import pytest

from altkraft_onprem.delivery import dkim as signing
from altkraft_onprem.delivery import mime, smtp
from altkraft_onprem.delivery.errors import DeliveryError
from tests.delivery.keys import dns, write_keys

HTML = "<p>Здравствуйте, <b>Иван</b>!</p>\n<p>.dot line</p>\n"
TEXT = "Здравствуйте, Иван!\n.dot line"


@pytest.fixture()
def keys(tmp_path):
    return write_keys(tmp_path / "dkim")


@pytest.fixture(autouse=True)
def _fresh_pools():
    yield
    for pool in smtp._pools.values():
        pool.close()
    smtp._pools.clear()


def build(html=HTML, text=TEXT, eight_bit=True) -> mime.Mime:
    return mime.build(from_email="news@example.com", from_name="Магазин", to_email="ivan@example.net",
                      to_name="Иван Петров", subject="Скидки 🎉", html=html, text=text,
                      eight_bit=eight_bit)


def parsed(message: mime.Mime) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def test_eight_bit_parts_carry_utf8_as_is():
    message = build()
    assert message.eight_bit
    assert "Здравствуйте".encode() in message.body
    assert message.body.count(b"Content-Transfer-Encoding: 8bit") == 2
    assert b"\n" not in message.body.replace(b"\r\n", b"")          # CRLF only
    result = parsed(message)
    assert result.get_body(("html",)).get_content().replace("\r\n", "\n") == HTML.rstrip()
    assert result.get_body(("plain",)).get_content().replace("\r\n", "\n").strip() == TEXT


def test_without_8bitmime_bodies_stay_seven_bit():
    message = build(eight_bit=False)
    assert not message.eight_bit and message.as_bytes().isascii()
    assert b"8bit" not in message.body


def test_a_line_over_998_octets_falls_back_to_seven_bit():
    long_html = "<p>" + "Ж" * 600 + "</p>\n"                  # 1,207 octets on one line
    message = build(html=long_html)
    assert message.eight_bit                                  # the text part still is 8bit
    assert message.body.count(b"Content-Transfer-Encoding: 8bit") == 1
    assert max(len(line) for line in message.as_bytes().split(b"\r\n")) <= 998
    html = parsed(message).get_body(("html",)).get_content().replace("\r\n", "\n")
    assert html.rstrip() == long_html.rstrip()


def test_ascii_bodies_are_seven_bit_and_need_no_body_parameter():
    message = build(html="<p>Hello</p>", text="Hello")
    assert not message.eight_bit
    assert b"Content-Transfer-Encoding: 7bit" in message.body


def test_eight_bit_message_signature_verifies(keys):
    message = build()
    message.extra = signing.signature_lines(signing.keys_for(_settings(keys), "example.com"),
                                            message.headers, message.body)
    raw = message.as_bytes()
    assert dkim.verify(raw, dnsfunc=dns(keys[1]))
    assert dkim.DKIM(raw).verify(idx=1, dnsfunc=dns(keys[1]))


def test_long_encoded_words_stay_within_limits():
    value = "Очень длинная тема письма с эмодзи 🎉 и ещё немного текста, чтобы было несколько слов"
    line = mime.header_line("Subject", value)
    for part in line.split(b"\r\n"):
        assert len(part) <= 998
    for word in line.split():
        if word.startswith(b"=?"):
            assert len(word) <= 75
    assert str(email.message_from_bytes(line + b"\r\n", policy=email.policy.default)["Subject"]) == value


def test_relay_receives_the_eight_bit_message(smtp_sink, keys):
    pool = smtp.RelayPool([smtp_sink.relay()])
    session = pool.checkout()
    try:
        assert session.offers_8bitmime()
        message = build()
        message.extra = signing.signature_lines(signing.keys_for(_settings(keys), "example.com"),
                                                message.headers, message.body)
        reply = session.send("b@example.com", "ivan@example.net", message.as_bytes(), eight_bit=True)
    finally:
        pool.checkin(session)
    assert reply.code == 250
    [received] = smtp_sink.messages
    assert dkim.verify(received.raw, dnsfunc=dns(keys[1]))
    assert ".dot line" in received.get_body(("html",)).get_content()


def test_failing_before_the_final_dot_delivers_nothing(smtp_sink):
    pool = smtp.RelayPool([smtp_sink.relay()])
    session = pool.checkout()

    class Stop(Exception):
        pass

    def refuse():
        raise Stop()

    try:
        with pytest.raises(Stop):
            session.send("b@example.com", "ivan@example.net", build().as_bytes(), eight_bit=True,
                         before_end=refuse)
        assert session.conn is None                 # dropped: the relay discards the message
        session.send("b@example.com", "ivan@example.net", build().as_bytes(), eight_bit=True,
                     before_end=lambda: None)
    finally:
        if session.conn is not None:
            pool.checkin(session)
        else:
            session.relay.slots.release()
    assert len(smtp_sink.messages) == 1


def test_eight_bit_to_a_relay_without_8bitmime_is_refused_before_sending(smtp_sink):
    pool = smtp.RelayPool([smtp_sink.relay()])
    session = pool.checkout()
    try:
        session.conn.esmtp_features.pop("8bitmime", None)
        with pytest.raises(DeliveryError) as caught:
            session.send("b@example.com", "ivan@example.net", build().as_bytes(), eight_bit=True)
        assert caught.value.temporary and "8BITMIME" in caught.value.message
    finally:
        pool.checkin(session)
    assert smtp_sink.messages == []


def _settings(keys):
    return {"dkim.keys": keys[0]}
