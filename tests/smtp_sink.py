"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for tests.

    def test_x(smtp_sink):
        settings = make_settings(..., **{"smtp.relays": [smtp_sink.relay()]})
        ...
        msg = smtp_sink.messages[0]   # email.message.EmailMessage
        msg.envelope_from, msg.envelope_to, msg.raw

Faults: `smtp_sink.fail("451 4.3.0 Try later", times=3)` answers the next 3 transactions with
that reply (at DATA, or `stage="rcpt"` / `"mail"`; a 421 also closes the connection);
`smtp_sink.drop(times=2)` cuts the next 2 connections after the final dot, before any reply
(`keep=True`: the message is kept first, as a relay that accepted it and then lost the
connection would have);
`smtp_sink.stop()` / `smtp_sink.start()` take the relay down and bring it back on the same
port. Optional AUTH (`SmtpSink(auth=("user", "pass"))`), TLS (`tls="starttls"|"tls"`) and
PIPELINING (`pipelining=True`).
"""
from __future__ import annotations

import datetime
import email
import email.policy
import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class _Fault:
    reply: str | None      # None: drop the connection after the final dot, before a reply
    stage: str
    times: int
    rcpt: str | None = None  # only transactions to this recipient
    keep: bool = False       # a drop: keep the message first (the relay had accepted it)


def self_signed_context(directory: Path | None = None) -> ssl.SSLContext:
    """A server TLS context with a throw-away certificate for 127.0.0.1/localhost."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    directory = Path(directory or tempfile.mkdtemp(prefix="ak-tls-"))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class SmtpSink:
    """aiosmtpd on 127.0.0.1 collecting parsed messages; see the module docstring."""

    def __init__(self, *, auth: tuple[str, str] | None = None, tls: str = "none",
                 port: int | None = None, pipelining: bool = False):
        self.port = port or _free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.connections = 0
        self.transactions = 0
        self.auth = auth
        self.tls = tls
        self.pipelining = pipelining      # advertise RFC 2920 (aiosmtpd reads commands in order)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._tls_context = self_signed_context() if tls != "none" else None
        # Called with each accepted message, in the sink's thread (e.g. to act mid-campaign).
        self.on_message = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> SmtpSink:
        kwargs = {"enable_SMTPUTF8": True, "data_size_limit": 64 * 1024 * 1024,
                  "ident": "altkraft-test-sink"}
        if self.auth:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self.tls == "starttls":
            kwargs.update(tls_context=self._tls_context, require_starttls=True)
        elif self.tls == "tls":
            kwargs.update(ssl_context=self._tls_context)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def relay(self, **extra) -> dict:
        """The [[smtp.relays]] entry pointing at this sink."""
        security = {"none": "none", "starttls": "starttls", "tls": "tls"}[self.tls]
        entry = {"host": "127.0.0.1", "port": self.port, "security": security}
        if self.tls != "none":
            entry["verify_tls"] = False
        entry.update(extra)
        return entry

    # --- faults ------------------------------------------------------------------------------

    def fail(self, reply: str, times: int = 1, stage: str = "data", rcpt: str | None = None) -> None:
        """Answer the next `times` transactions with `reply` (e.g. "451 4.3.0 Busy");
        with `rcpt`, only transactions to that recipient (stages rcpt and data)."""
        with self._lock:
            self._faults.append(_Fault(reply, stage, times, rcpt))

    def drop(self, times: int = 1, rcpt: str | None = None, keep: bool = False) -> None:
        """Cut the next `times` connections after the final dot (no reply at all); with
        `keep`, the message is kept first."""
        with self._lock:
            self._faults.append(_Fault(None, "data", times, rcpt, keep))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.messages.clear()

    def _take_fault(self, stage: str, rcpts=()) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.rcpt is not None and fault.rcpt not in rcpts:
                    continue
                if fault.stage == stage and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- queries -----------------------------------------------------------------------------

    def recipients(self) -> list[str]:
        with self._lock:
            return [rcpt for msg in self.messages for rcpt in msg.envelope_to]

    def by_recipient(self, address: str) -> list[email.message.EmailMessage]:
        with self._lock:
            return [msg for msg in self.messages if address in msg.envelope_to]

    # --- aiosmtpd handler hooks ----------------------------------------------------------------

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and self.auth is not None:
            ok = (auth_data.login.decode(), auth_data.password.decode()) == self.auth
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        fault = self._take_fault("mail")
        if fault is not None:
            return self._answer(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = self._take_fault("rcpt", (address,))
        if fault is not None:
            return self._answer(server, fault)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = self._take_fault("data", envelope.rcpt_tos)
        if fault is not None and not fault.keep:
            return self._answer(server, fault)
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        message.envelope_from = envelope.mail_from
        message.envelope_to = list(envelope.rcpt_tos)
        message.raw = raw
        with self._lock:
            self.messages.append(message)
            self.transactions += 1
        if self.on_message is not None:
            self.on_message(message)
        if fault is not None:
            return self._answer(server, fault)
        return f"250 2.0.0 OK queued as {len(self.messages)}"

    @staticmethod
    def _answer(server, fault: _Fault) -> str:
        if fault.reply is None:
            server.transport.abort()      # a drop: the client never hears a reply
            return "451 4.4.2 connection dropped"
        if fault.reply.startswith("421"):
            # 421 closes the session (RFC 5321 §3.8) right after the reply is written.
            server.loop.call_soon(server.transport.abort)
        return fault.reply


@pytest.fixture()
def smtp_sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def module_smtp_sink():
    """One sink for a whole test module (messages accumulate across its tests)."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()
