"""send_single: MIME + DKIM + pooled SMTP into a real aiosmtpd sink on 127.0.0.1."""
from __future__ import annotations

import dkim
import pytest

from altkraft_onprem.delivery import smtp
from altkraft_onprem.delivery.outbound import DeliveryError, send_single
from tests.conftest import make_settings
from tests.delivery.keys import dns, write_keys
from tests.smtp_sink import SmtpSink

SUBJECT = "Привет, мир 🎉 — скидки до 50% на всё"


@pytest.fixture()
def keys(tmp_path):
    return write_keys(tmp_path / "dkim")


def settings_for(tmp_path, relays, keys=None):
    return make_settings(tmp_path / "data", f"sqlite:///{tmp_path}/x.db",
                         **{"smtp.relays": relays, "dkim.keys": keys[0] if keys else []})


def send(settings, **extra):
    values = dict(to_email="ivan@example.net", to_name="Иван Петров 🙂", from_email="news@example.com",
                  from_name="Магазин «Ромашка»", subject=SUBJECT,
                  html="<p>Здравствуйте, <b>Иван</b>!</p>\n<p>.dot line</p>",
                  text="Здравствуйте, Иван!\n.dot line")
    values.update(extra)
    return send_single(settings, **values)


@pytest.fixture(autouse=True)
def _fresh_pools():
    yield
    for pool in smtp._pools.values():
        pool.close()
    smtp._pools.clear()


def test_message_arrives_with_envelope(tmp_path, smtp_sink, keys):
    result = send(settings_for(tmp_path, [smtp_sink.relay()], keys), return_path="b-1-2@example.com")
    [message] = smtp_sink.messages
    assert message.envelope_from == "b-1-2@example.com"
    assert message.envelope_to == ["ivan@example.net"]
    assert message["Message-ID"] == result.message_id
    assert result.message_id.endswith("@example.com>")
    assert result.reply.startswith("250")


def test_multipart_alternative_carries_both_bodies(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    message = smtp_sink.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.replace("\r\n", "\n").strip() == "Здравствуйте, Иван!\n.dot line"
    assert "<b>Иван</b>" in html and ".dot line" in html
    assert message["Date"] is not None and message["MIME-Version"] == "1.0"


def test_subject_and_names_decode_to_the_original(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    message = smtp_sink.messages[0]
    assert message.raw.isascii()
    assert str(message["Subject"]) == SUBJECT
    assert message["From"].addresses[0].display_name == "Магазин «Ромашка»"
    assert message["To"].addresses[0].display_name == "Иван Петров 🙂"
    assert message["To"].addresses[0].addr_spec == "ivan@example.net"


def test_rsa_signature_verifies(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    assert dkim.verify(smtp_sink.messages[0].raw, dnsfunc=dns(keys[1]))


def test_ed25519_second_signature_verifies(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    verifier = dkim.DKIM(smtp_sink.messages[0].raw)
    assert verifier.verify(idx=1, dnsfunc=dns(keys[1]))
    assert verifier.signature_fields[b"a"] == b"ed25519-sha256"


def test_extra_headers_are_signed(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys),
         headers={"List-Unsubscribe": "<https://x.example.com/p/u/abc>, <mailto:u@example.com>",
                  "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    verifier = dkim.DKIM(smtp_sink.messages[0].raw)
    assert verifier.verify(dnsfunc=dns(keys[1]))
    signed = [name.strip() for name in verifier.signature_fields[b"h"].split(b":")]
    assert b"list-unsubscribe" in signed and b"list-unsubscribe-post" in signed


def _rewrapped(raw: bytes) -> bytes:
    """What a relay that re-wraps a body may do to it: spaces at line ends, runs of spaces
    and tabs for one, blank lines added at the end."""
    head, _, body = raw.partition(b"\r\n\r\n")
    body = body.replace(b"\r\n", b"  \r\n").replace(b" ", b" \t ") + b"\r\n\r\n"
    return head + b"\r\n\r\n" + body


def test_the_signature_survives_a_relay_that_rewraps_the_body(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys),
         html="<table>\n    <tr>  <td>Hello   there</td> </tr>\n</table>\n", text="a  b\n")
    raw = smtp_sink.messages[0].raw
    verifier = dkim.DKIM(_rewrapped(raw))
    assert verifier.verify(dnsfunc=dns(keys[1]))
    assert verifier.signature_fields[b"c"] == b"relaxed/relaxed"
    assert dkim.DKIM(_rewrapped(raw)).verify(idx=1, dnsfunc=dns(keys[1]))       # Ed25519 too
    assert not dkim.verify(raw.replace(b"Hello", b"Hallo"), dnsfunc=dns(keys[1]))


def test_tampered_message_fails_verification(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    raw = smtp_sink.messages[0].raw.replace(b"Subject:", b"Subject: [x]", 1)
    assert not dkim.verify(raw, dnsfunc=dns(keys[1]))


def test_connections_are_reused(tmp_path, smtp_sink, keys):
    settings = settings_for(tmp_path, [smtp_sink.relay()], keys)
    for _ in range(3):
        send(settings)
    assert len(smtp_sink.messages) == 3
    assert smtp_sink.connections == 1


def test_idle_connection_closed_by_relay_is_replaced(tmp_path, smtp_sink, keys):
    settings = settings_for(tmp_path, [smtp_sink.relay()], keys)
    send(settings)
    smtp_sink.stop()
    smtp_sink.start()
    send(settings)
    assert len(smtp_sink.messages) == 2


def test_permanent_refusal_is_a_permanent_error(tmp_path, smtp_sink, keys):
    smtp_sink.fail("550 5.1.1 No such user", stage="rcpt")
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    assert not caught.value.temporary and caught.value.code == 550
    assert "550 5.1.1 No such user" in str(caught.value)


def test_temporary_refusal_is_a_temporary_error(tmp_path, smtp_sink, keys):
    smtp_sink.fail("451 4.3.0 Try again later")
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    assert caught.value.temporary and caught.value.code == 451


def test_drop_during_data_is_in_doubt(tmp_path, smtp_sink, keys):
    smtp_sink.drop()
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(tmp_path, [smtp_sink.relay()], keys))
    assert caught.value.temporary and caught.value.in_doubt


def test_unreachable_relay_names_it(tmp_path, smtp_sink, keys):
    relay = smtp_sink.relay()
    smtp_sink.stop()
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(tmp_path, [relay], keys))
    assert caught.value.relays_down
    assert f"127.0.0.1:{relay['port']}" in str(caught.value)


def test_second_relay_takes_over(tmp_path, smtp_sink, keys):
    down = SmtpSink()          # never started: connection refused
    result = send(settings_for(tmp_path, [down.relay(), smtp_sink.relay()], keys))
    assert result.relay == f"127.0.0.1:{smtp_sink.port}"
    assert len(smtp_sink.messages) == 1


def test_starttls_with_auth(tmp_path, keys):
    sink = SmtpSink(tls="starttls", auth=("altkraft", "s3cret")).start()
    try:
        password = tmp_path / "smtp_password"
        password.write_text("s3cret\n")
        relay = sink.relay(username="altkraft", password_file=str(password))
        send(settings_for(tmp_path, [relay], keys))
        assert len(sink.messages) == 1
    finally:
        sink.stop()


def test_implicit_tls(tmp_path, keys):
    sink = SmtpSink(tls="tls").start()
    try:
        send(settings_for(tmp_path, [sink.relay()], keys))
        assert len(sink.messages) == 1
    finally:
        sink.stop()


def test_wrong_password_is_reported(tmp_path, keys):
    sink = SmtpSink(auth=("altkraft", "s3cret")).start()
    try:
        password = tmp_path / "smtp_password"
        password.write_text("wrong")
        relay = sink.relay(username="altkraft", password_file=str(password))
        with pytest.raises(DeliveryError, match="refused the login"):
            send(settings_for(tmp_path, [relay], keys))
    finally:
        sink.stop()


def test_missing_password_file_is_named(tmp_path, smtp_sink, keys):
    relay = smtp_sink.relay(username="x", password_file=str(tmp_path / "nope"))
    with pytest.raises(DeliveryError, match="password_file"):
        send(settings_for(tmp_path, [relay], keys))


def test_missing_key_file_is_named(tmp_path, smtp_sink, keys):
    broken = [dict(keys[0][0], key_file=str(tmp_path / "missing.pem"))]
    with pytest.raises(DeliveryError, match="missing.pem"):
        send(settings_for(tmp_path, [smtp_sink.relay()], (broken, {})))


def test_unsigned_when_domain_has_no_key(tmp_path, smtp_sink, keys):
    send(settings_for(tmp_path, [smtp_sink.relay()], keys), from_email="news@other.org")
    assert smtp_sink.messages[0]["DKIM-Signature"] is None


def test_header_injection_is_refused(tmp_path, smtp_sink, keys):
    with pytest.raises(DeliveryError, match="Subject"):
        send(settings_for(tmp_path, [smtp_sink.relay()], keys), subject="Hi\r\nBcc: x@evil.com")
    assert smtp_sink.messages == []


def test_no_relay_configured(tmp_path, keys):
    with pytest.raises(DeliveryError, match="no SMTP relay configured"):
        send(settings_for(tmp_path, [], keys))


@pytest.fixture()
def pipelining_sink():
    sink = SmtpSink(pipelining=True).start()
    yield sink
    sink.stop()


def test_pipelined_transaction_arrives_intact(tmp_path, pipelining_sink, keys):
    settings = settings_for(tmp_path, [pipelining_sink.relay()], keys)
    send(settings)
    send(settings)
    assert [m.envelope_to for m in pipelining_sink.messages] == [["ivan@example.net"]] * 2
    assert dkim.verify(pipelining_sink.messages[1].raw, dnsfunc=dns(keys[1]))
    assert ".dot line" in pipelining_sink.messages[0].get_body(("plain",)).get_content()


def test_pipelined_refused_recipient_is_permanent(tmp_path, pipelining_sink, keys):
    pipelining_sink.fail("550 5.1.1 No such user", stage="rcpt")
    settings = settings_for(tmp_path, [pipelining_sink.relay()], keys)
    with pytest.raises(DeliveryError) as caught:
        send(settings)
    assert caught.value.code == 550 and not caught.value.temporary
    send(settings)                       # the session is still usable afterwards
    assert len(pipelining_sink.messages) == 1


def test_pipelined_drop_during_data_is_in_doubt(tmp_path, pipelining_sink, keys):
    pipelining_sink.drop()
    with pytest.raises(DeliveryError) as caught:
        send(settings_for(tmp_path, [pipelining_sink.relay()], keys))
    assert caught.value.in_doubt
