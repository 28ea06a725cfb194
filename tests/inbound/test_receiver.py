"""The SMTP receiver on 127.0.0.1: which recipients it takes, limits, and stored-before-250."""
from __future__ import annotations

import smtplib
import socket

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.delivery import verp
from altkraft_onprem.inbound.models import inbound_messages
from altkraft_onprem.inbound.receiver import _Session
from altkraft_onprem.tracking.tokens import tracking_key
from tests.inbound import reports
from tests.inbound.conftest import BOUNCE_DOMAIN, DMARC, FBL, Receiver, inbound_settings


@pytest.fixture(scope="module")
def settings(env):
    return inbound_settings(env, inbound__max_message_kb=64, inbound__messages_per_ip_minute=40)


@pytest.fixture(scope="module")
def server(env, settings):
    # No pipeline here: what is stored stays "new", so these tests see the intake alone.
    running = Receiver(env, settings, enqueue=lambda: None).start()
    yield running
    running.stop()


def _client(server) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.port, timeout=10)


def _rcpt(server, address: str) -> int:
    with _client(server) as client:
        client.ehlo("test.example.net")
        client.mail("")
        return client.rcpt(address)[0]


def _count(env) -> int:
    with db.read(env.engine) as conn:
        return conn.execute(select(func.count()).select_from(inbound_messages)).scalar_one()


def test_our_verp_address_is_accepted(env, settings, server):
    address = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 7, 42)
    assert _rcpt(server, address) == 250


def test_our_unsubscribe_address_is_accepted(env, settings, server):
    address = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 7, 42, verp.UNSUBSCRIBE_PREFIX)
    assert _rcpt(server, address) == 250


@pytest.mark.parametrize("address", [FBL, DMARC, FBL.upper()])
def test_configured_report_addresses_are_accepted(server, address):
    assert _rcpt(server, address) == 250


def test_forged_verp_address_is_refused_at_rcpt(settings, server):
    good = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 7, 42)
    forged = good.replace("+7-42-", "+7-43-")
    assert _rcpt(server, forged) == 550


def test_unsubscribe_mac_is_not_a_bounce_mac(settings, server):
    """The two kinds carry different MACs: a bounce address relabelled is refused."""
    bounce = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 7, 42)
    assert _rcpt(server, bounce.replace("bounces+", "unsubscribe+")) == 550


@pytest.mark.parametrize("address", ["postmaster@bounces.example.com", "someone@example.org",
                                     "bounces@bounces.example.com", "x" * 400 + "@a.b"])
def test_everything_else_is_refused_at_rcpt_no_relay(server, address):
    assert _rcpt(server, address) == 550


def test_our_address_at_another_domain_is_refused(settings, server):
    address = verp.encode(tracking_key(settings), "elsewhere.example.org", 7, 42)
    assert _rcpt(server, address) == 550


def test_message_is_stored_before_the_250(env, settings, server):
    address = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 3, 4)
    before = _count(env)
    with _client(server) as client:
        refused = client.sendmail("", [address], reports.auto_reply(address))
    assert refused == {}
    assert _count(env) == before + 1       # committed by the time the client heard 250
    with db.read(env.engine) as conn:
        row = conn.execute(select(inbound_messages).order_by(inbound_messages.c.id.desc())).first()
    assert (row.source, row.rcpt, row.state, row.peer) == ("smtp", address, "new", "127.0.0.1")


def test_a_retried_message_is_stored_once(env, settings, server):
    address = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 3, 5)
    message = reports.auto_reply(address, subject="Retried")
    with _client(server) as client:
        client.sendmail("", [address], message)
    before = _count(env)
    with _client(server) as client:
        assert client.sendmail("", [address], message) == {}
    assert _count(env) == before


def test_oversized_message_gets_552_and_is_not_stored(env, settings, server):
    address = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 3, 6)
    before = _count(env)
    big = reports.auto_reply(address) + b"x" * 100 * 1024
    with _client(server) as client, pytest.raises(smtplib.SMTPException) as caught:
        client.sendmail("", [address], big)
    assert "552" in str(caught.value)
    assert _count(env) == before


def test_endless_header_line_is_refused(env, settings, server):
    address = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 3, 7)
    before = _count(env)
    endless = b"X-Endless: " + b"a" * 20000 + b"\r\n" + reports.auto_reply(address)
    with _client(server) as client, pytest.raises(smtplib.SMTPException):
        client.sendmail("", [address], endless)
    assert _count(env) == before


def _replies(stream, count: int) -> list[bytes]:
    out = []
    while len(out) < count:
        line = stream.readline()
        assert line, f"connection closed after {out}"
        if line[3:4] != b"-":
            out.append(line[:3])
    return out


def test_pipelined_commands_get_every_reply_in_order(env, settings, server):
    """MAIL, a refused and an accepted RCPT and DATA in one packet, then the message and QUIT
    in another: the replies kept back to go out together all arrive, in order."""
    good = verp.encode(tracking_key(settings), BOUNCE_DOMAIN, 3, 8)
    before = _count(env)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        stream = sock.makefile("rb")
        assert _replies(stream, 1) == [b"220"]
        sock.sendall(b"EHLO pipelining.example\r\n")
        assert _replies(stream, 1) == [b"250"]
        sock.sendall(b"MAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<someone@example.org>\r\n"
                     b"RCPT TO:<" + good.encode() + b">\r\nDATA\r\n")
        assert _replies(stream, 4) == [b"250", b"550", b"250", b"354"]
        sock.sendall(reports.auto_reply(good, subject="Pipelined") + b"\r\n.\r\nQUIT\r\n")
        assert _replies(stream, 2) == [b"250", b"221"]
    assert _count(env) == before + 1


def test_too_many_messages_from_one_ip_get_421(env, settings, server):
    codes = []
    with _client(server) as client:
        client.ehlo("test.example.net")
        for _ in range(60):
            code = client.mail("")[0]
            codes.append(code)
            if code != 250:
                break
            client.rset()
    assert codes[-1] == 421


@given(st.text(alphabet="ab.@<>-+ \"\t=x1()[]:;,\\", max_size=24)
       | st.from_regex(r"\A<[a-z0-9.+-]{0,12}@?[a-z0-9.-]{0,12}>( SIZE=1| BODY=8BITMIME)?\Z"))
def test_the_fast_address_reader_agrees_with_aiosmtpd(text):
    """The receiver reads plain MAIL/RCPT addresses itself; anything it reads must come out
    as aiosmtpd's RFC 5322 parser has it."""
    ours, theirs = _Session.__new__(_Session), SMTP.__new__(SMTP)
    ours.local_part_limit = theirs.local_part_limit = 64

    def read(session):
        try:
            address, rest = session._getaddr(text)
        except Exception as exc:  # noqa: BLE001 - aiosmtpd's parser raises on some garbage
            return type(exc)
        return address, rest.split() if rest is not None else None
    assert read(ours) == read(theirs)
