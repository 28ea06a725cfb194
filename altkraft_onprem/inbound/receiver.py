"""`altkraft inbound`: the SMTP receiver for the bounce domain (aiosmtpd).

It accepts a recipient only when it means something here (addresses.Recogniser): everything
else gets 550 at RCPT, so it never relays and never bounces mail back (no backscatter). A
message is answered 250 only once it is committed to the intake (intake.GroupWriter); if the
database cannot take it, the client gets 451 and tries again later. Limits: message size
(552), messages per client IP per minute (421), line length (aiosmtpd's 1,001 octets).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import ssl
import time

from aiosmtpd.smtp import SMTP

from altkraft_onprem.jobqueue import Waker

from . import imap, intake
from .addresses import Recogniser

log = logging.getLogger("altkraft.inbound")
SD_LISTEN_FDS_START = 3


class RateLimiter:
    """Messages per client IP in the current minute (a fixed window: cheap, and a burst at a
    window's edge of twice the limit is harmless here)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._window = 0
        self._counts: dict[str, int] = {}

    def allow(self, ip: str) -> bool:
        window = int(time.monotonic() // 60)
        if window != self._window:
            self._window, self._counts = window, {}
        count = self._counts.get(ip, 0) + 1
        self._counts[ip] = count
        return count <= self.per_minute


class Handler:
    def __init__(self, settings, writer: intake.GroupWriter):
        self.recogniser = Recogniser(settings)
        self.writer = writer
        self.limiter = RateLimiter(settings["inbound.messages_per_ip_minute"])

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not self.limiter.allow(_peer_ip(session)):
            return "421 4.7.0 Too many messages from your address; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.recogniser.recognise(address) is None:
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        ip = _peer_ip(session)
        rows = [intake.row(raw, source="smtp", rcpt=rcpt, peer=ip, mail_from=envelope.mail_from or "")
                for rcpt in envelope.rcpt_tos]
        try:
            await self.writer.submit(rows)
        except Exception:  # noqa: BLE001 - logged by the writer; the client retries
            return "451 4.3.0 The message could not be stored; try again later"
        return "250 2.0.0 Stored"


def _peer_ip(session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def tls_context(settings) -> ssl.SSLContext | None:
    if not settings["inbound.tls_cert_file"]:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings["inbound.tls_cert_file"],
                            settings["inbound.tls_key_file"] or None)
    return context


# An address in MAIL FROM / RCPT TO as bounces come: <>, or <dot-atom@host.name> with options
# after it. aiosmtpd parses every address with the email package's RFC 5322 parser, a fair
# part of a session's time; anything this does not match still goes to that parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDRESS = re.compile(rf"[ \t]*<(|{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*([^()]*)\Z")


class _Session(SMTP):
    def _getaddr(self, arg: str):
        found = _SIMPLE_ADDRESS.match(arg or "")
        if found is None:
            return super()._getaddr(arg)
        address, rest = found.group(1) or "<>", found.group(2)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._replies: list[bytes] = []

    async def push(self, status) -> None:
        """Sends a reply — or, when it is a 250 and the client has already sent its next
        command (pipelining: MAIL, RCPT and DATA in one packet), keeps it to go out with the
        next reply: one send per group of pipelined commands instead of one per command. That
        next command is read at once and always answered, so a kept reply never waits; other
        replies (354, errors, 221 before closing) always go out at once."""
        response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") \
            if isinstance(status, str) else status
        self._replies.append(response + b"\r\n")
        if response[:3] == b"250" and b"\n" in self._reader._buffer:
            return
        data = b"".join(self._replies)
        self._replies.clear()
        self._writer.write(data)
        await self._writer.drain()

    def connection_made(self, transport) -> None:
        # Replies go out at once: asyncio sets TCP_NODELAY only on sockets it knows as TCP
        # (not on one made without a protocol number, nor always on systemd's), and with Nagle
        # a client that pipelines MAIL/RCPT/DATA waits for a delayed ACK (~40 ms) per message.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def smtp_factory(settings, handler: Handler, hostname: str | None = None):
    limit = settings["inbound.max_message_kb"] * 1024
    context = tls_context(settings)

    def make() -> SMTP:
        return _Session(handler, data_size_limit=limit, hostname=hostname, tls_context=context,
                    ident="ALTKRAFT inbound", auth_require_tls=False)
    return make


def listening_socket(settings) -> socket.socket:
    """The socket systemd passed (socket activation, e.g. port 25), else inbound.smtp_listen."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
        return socket.socket(fileno=SD_LISTEN_FDS_START)
    host, _, port = settings["inbound.smtp_listen"].rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(512)
    return sock


async def serve(settings, engine, enqueue, sock: socket.socket, stop: asyncio.Event,
                ready=None) -> None:
    """Receives until `stop` is set, then finishes the messages being stored."""
    loop = asyncio.get_running_loop()
    writer = intake.GroupWriter(engine, loop, on_commit=Waker(enqueue, interval=0.5))
    handler = Handler(settings, writer)
    hostname = settings["inbound.bounce_domain"] or settings["delivery.bounce_domain"] or None
    server = await loop.create_server(smtp_factory(settings, handler, hostname), sock=sock)
    if ready is not None:
        ready(server)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        writer.close()


def run(settings, engine, enqueue) -> None:
    """The `altkraft inbound` process: SIGTERM / SIGINT stop it cleanly. It also watches the
    [[inbound.imap]] mailboxes (IMAP IDLE, imap.Watcher)."""
    sock = listening_socket(settings)
    address = sock.getsockname()
    watchers = imap.watch_all(engine, settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, engine, enqueue, sock, stop,
                    ready=lambda _server: log.warning("altkraft inbound: receiving on %s:%s",
                                                      address[0], address[1]))
    try:
        asyncio.run(main())
    finally:
        for watcher in watchers:
            watcher.stop()
