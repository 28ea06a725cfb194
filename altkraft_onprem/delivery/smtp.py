"""SMTP relays from [[smtp.relays]]: connections kept open and reused for many messages.

`RelayPool.send()` hands one message to the first relay that takes it. Replies are
classified into DeliveryError kinds: 4xx and broken connections are temporary, 5xx are
permanent, "no relay reachable" sets `relays_down`. A connection that broke while it sat idle
is replaced transparently (nothing was sent on it yet); one that broke after the message
data went out is reported `in_doubt`, never silently retried.
"""
from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .errors import DeliveryError

TIMEOUT = 60.0
IDLE_SECONDS = 25.0          # relays drop idle sessions; reconnect instead of finding out


_DOT_AFTER_NEWLINE = re.compile(rb"\n\.")    # sre's literal search: ~3x faster than `in` here


def dot_stuffed(data: bytes) -> bytes:
    """Message content for DATA (RFC 5321 4.5.2): a dot that starts a line doubled, the last
    line ended."""
    if _DOT_AFTER_NEWLINE.search(data) is not None:
        data = data.replace(b"\n.", b"\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data if data.endswith(b"\r\n") else data + b"\r\n"


@dataclass(frozen=True)
class Reply:
    relay: str
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Relay:
    """One configured relay with at most max_connections open sessions."""

    def __init__(self, entry: dict):
        self.host = entry["host"]
        self.port = entry["port"]
        self.security = entry["security"]
        self.username = entry.get("username") or ""
        self.password = ""
        if self.username:
            path = entry.get("password_file") or ""
            if not path:
                raise DeliveryError(f"relay {self.name}: username set but no password_file")
            try:
                self.password = Path(path).read_text().strip()
            except OSError as exc:
                raise DeliveryError(f"relay {self.name}: cannot read password_file {path}: "
                                    f"{exc.strerror or exc}") from None
        self.helo = entry.get("helo") or None
        self.verify_tls = entry.get("verify_tls", True)
        self.slots = threading.BoundedSemaphore(entry.get("max_connections") or 4)
        self.max_connections = entry.get("max_connections") or 4
        self.idle: deque[tuple[float, smtplib.SMTP]] = deque()
        self.lock = threading.Lock()
        self.down_since: float | None = None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> smtplib.SMTP:
        """A fresh, greeted (and authenticated) session; DeliveryError if unreachable."""
        try:
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.helo,
                                        timeout=TIMEOUT, context=self._tls_context())
            else:
                conn = smtplib.SMTP(self.host, self.port, local_hostname=self.helo, timeout=TIMEOUT)
            # Commands are small writes answered by small replies: Nagle's algorithm plus the
            # peer's delayed ACK would stall each one for up to 40 ms.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    conn.close()
                    raise DeliveryError(f"relay {self.name} does not offer STARTTLS",
                                        temporary=True, relays_down=True)
                conn.starttls(context=self._tls_context())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"relay {self.name} refused the login: {exc.smtp_code} "
                                f"{_text(exc.smtp_error)}", temporary=True, relays_down=True) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"relay {self.name}: {exc.smtp_code} {_text(exc.smtp_error)}",
                                temporary=True, relays_down=True, code=exc.smtp_code) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"relay {self.name} unreachable: {_describe(exc)}",
                                temporary=True, relays_down=True) from None
        return conn

    def take(self) -> tuple[smtplib.SMTP, bool]:
        """(session, reused) — an idle one if fresh enough, else a new one."""
        now = time.monotonic()
        with self.lock:
            while self.idle:
                since, conn = self.idle.pop()
                if now - since < IDLE_SECONDS:
                    return conn, True
                _close(conn)
        return self.connect(), False

    def give_back(self, conn: smtplib.SMTP) -> None:
        with self.lock:
            self.idle.append((time.monotonic(), conn))

    def close_idle(self) -> None:
        with self.lock:
            while self.idle:
                _close(self.idle.pop()[1])


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _close(conn: smtplib.SMTP) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken socket must not raise
        pass


class Session:
    """One checked-out connection of a relay; `send` one message at a time on it."""

    def __init__(self, relay: Relay, slot: int | None = None):
        self.relay = relay
        self.slot = slot                  # the installation-wide slot it holds (delivery/slots.py)
        self.conn: smtplib.SMTP | None = None
        self.reused = False

    def open(self) -> None:
        if self.conn is None:
            self.conn, self.reused = self.relay.take()

    def drop(self) -> None:
        if self.conn is not None:
            _close(self.conn)
            self.conn = None

    def release(self) -> None:
        if self.conn is not None:
            self.relay.give_back(self.conn)
            self.conn = None

    def offers_8bitmime(self) -> bool:
        """Whether the relay takes 8bit bodies (RFC 6152); opens the session if needed."""
        self.open()
        return self.conn.has_extn("8bitmime")

    def send(self, mail_from: str, rcpt: str, data: bytes, *, eight_bit: bool = False,
             before_end=None) -> Reply:
        """MAIL, RCPT, DATA on this session (pipelined when the relay offers PIPELINING,
        RFC 2920); DeliveryError classified as described above. `data` has CRLF line ends;
        `eight_bit` data goes with BODY=8BITMIME. `before_end()` runs once the content is
        out but before the final dot (until then the relay discards the message if we
        stop); if it raises, the connection is dropped and the exception passes on."""
        for address in (mail_from, rcpt):
            if any(c in address for c in "\r\n<>") or not address.isascii():
                raise DeliveryError(f"not a usable SMTP address: {address!r}")
        options = ["BODY=8BITMIME"] if eight_bit else []
        for attempt in (1, 2):
            self.open()
            if eight_bit and not self.conn.has_extn("8bitmime"):
                raise DeliveryError(f"relay {self.relay.name} does not take 8bit messages "
                                    "(8BITMIME)", temporary=True)
            pipelined = self.conn.has_extn("pipelining")
            try:
                if pipelined:
                    body = " BODY=8BITMIME" if eight_bit else ""
                    self.conn.send(f"MAIL FROM:<{mail_from}>{body}\r\nRCPT TO:<{rcpt}>\r\n"
                                   "DATA\r\n".encode("ascii"))
                    code, text = self.conn.getreply()
                else:
                    code, text = self.conn.mail(mail_from, options)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self.drop()
                if self.reused and attempt == 1:
                    continue          # the relay closed an idle session: nothing was sent
                raise DeliveryError(f"relay {self.relay.name} dropped the connection: "
                                    f"{_describe(exc)}", temporary=True) from None
            break
        name = self.relay.name
        try:
            if pipelined:
                code, text = self._pipelined_rest((code, text), data, before_end)
            else:
                code, text = self._stepwise_rest(code, text, rcpt, data, before_end)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.drop()
            raise DeliveryError(f"relay {name} dropped the connection: {_describe(exc)}",
                                temporary=True) from None
        return Reply(name, code, _text(text))

    def _pipelined_rest(self, mail: tuple, data: bytes, before_end) -> tuple[int, bytes]:
        conn = self.conn
        rcpt = conn.getreply()
        start = conn.getreply()
        if start[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            conn.send(b".\r\n")              # RFC 2920: end the empty transaction
            conn.getreply()
        if mail[0] != 250:
            self._refused("MAIL FROM", *mail)
        if rcpt[0] not in (250, 251):
            self._refused("RCPT TO", *rcpt)
        if start[0] != 354:
            self._refused("DATA", *start)
        return self._content(data, before_end)

    def _stepwise_rest(self, code: int, text, rcpt: str, data: bytes,
                       before_end) -> tuple[int, bytes]:
        if code != 250:
            self._refused("MAIL FROM", code, text)
        code, text = self.conn.rcpt(rcpt)
        if code not in (250, 251):
            self._refused("RCPT TO", code, text)
        code, text = self.conn.docmd("DATA")
        if code != 354:
            self._refused("DATA", code, text)
        return self._content(data, before_end)

    def _content(self, data: bytes, before_end=None) -> tuple[int, bytes]:
        """The message (dot-stuffed) and the final reply; a break now leaves it in doubt."""
        data = dot_stuffed(data)
        if before_end is not None:
            self.conn.send(data)
            try:
                before_end()
            except BaseException:
                self.drop()                 # no final dot: the relay throws the message away
                raise
            data = b""
        try:
            self.conn.send(data + b".\r\n")
            code, text = self.conn.getreply()
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.drop()
            raise DeliveryError(f"relay {self.relay.name} dropped the connection during DATA: "
                                f"{_describe(exc)}", temporary=True, in_doubt=True) from None
        if code != 250:
            self._refused("end of DATA", code, text)
        return code, text

    def _refused(self, stage: str, code: int, text) -> None:
        message = f"relay {self.relay.name} answered {stage}: {code} {_text(text)}"
        if code == 421 or code < 0:
            self.drop()
        else:
            try:
                self.conn.rset()
            except (smtplib.SMTPException, OSError):
                self.drop()
        raise DeliveryError(message, temporary=400 <= code < 500 or code < 0, code=code)


class RelayPool:
    """All configured relays, tried in order; thread-safe."""

    def __init__(self, entries: list[dict]):
        if not entries:
            raise DeliveryError("no SMTP relay configured ([[smtp.relays]] is empty)")
        self.relays = [Relay(entry) for entry in entries]

    def checkout(self, wait: bool = True, slots=None) -> Session:
        """A session on the first reachable relay with a free slot; give it back with
        `checkin`. With `slots` (delivery/slots.py) a slot also counts the sessions of every
        other process and host. DeliveryError(relays_down) if no relay answers, (busy) if
        the ones that might are all in use."""
        reasons, busy = [], False
        for relay in self.relays:
            if not relay.slots.acquire(timeout=TIMEOUT if wait else 0):
                reasons.append(f"relay {relay.name}: all {relay.max_connections} "
                               "connections busy")
                continue
            slot = None
            if slots is not None:
                slot = slots.take(relay.name, relay.max_connections)
                if slot is None:
                    relay.slots.release()
                    busy = True
                    reasons.append(f"relay {relay.name}: all {relay.max_connections} connections "
                                   "in use by the installation's other senders")
                    continue
            session = Session(relay, slot)
            try:
                session.open()
            except DeliveryError as exc:
                self.checkin(session, slots)
                reasons.append(exc.message)
                continue
            return session
        if busy:
            raise DeliveryError("; ".join(reasons), temporary=True, busy=True)
        raise DeliveryError("no SMTP relay reachable: " + "; ".join(reasons),
                            temporary=True, relays_down=True)

    @staticmethod
    def checkin(session: Session, slots=None) -> None:
        """Gives the session back and its slots. Kept open for reuse only without installation
        slots: an idle connection still counts at the relay, so it ends with its slot."""
        if slots is not None:
            session.drop()
            if session.slot is not None:
                slots.give_back(session.relay.name, session.slot)
                session.slot = None
        else:
            session.release()
        session.relay.slots.release()

    def send(self, mail_from: str, rcpt: str, data: bytes) -> Reply:
        session = self.checkout()
        try:
            return session.send(mail_from, rcpt, data)
        finally:
            self.checkin(session)

    def close(self) -> None:
        for relay in self.relays:
            relay.close_idle()


_pools: dict[str, RelayPool] = {}
_pools_lock = threading.Lock()


def pool_for(settings) -> RelayPool:
    """The process-wide pool for the configured relays (rebuilt when they change)."""
    import json

    ident = json.dumps(settings["smtp.relays"], sort_keys=True)
    with _pools_lock:
        pool = _pools.get(ident)
        if pool is None:
            pool = _pools[ident] = RelayPool(settings["smtp.relays"])
        return pool


def _forget_pools() -> None:
    # A forked child must not share the parent's sockets.
    _pools.clear()


os.register_at_fork(after_in_child=_forget_pools)
