"""Back-to-back messages on one pipelining SMTP session: one write and one read per message.

RFC 2920 lets message content open a pipelined group, so one write carries a message's
content and final dot together with MAIL, RCPT and DATA of the next. Their four replies are
read just before the following write, a compose later: by then they have arrived, so the
sender does not sit waiting for the relay, and the relay is woken once per message. A
message's content is therefore held until the replies to its envelope (354) are in.

Each final dot goes out only after `before_dot` (the sender's "every earlier reply is safe";
it may raise to stop) and after the results read so far were handed to `settle`, so at any
moment at most one message per session has reached the relay without its result being safe.
`settle(tag, result)` gets each message's result as soon as it is known: a Reply, or a
DeliveryError (in_doubt when the connection broke after the dot went out).
"""
from __future__ import annotations

import smtplib

from .errors import DeliveryError
from .smtp import Reply, Session, _describe, _text, dot_stuffed

_BROKEN = (smtplib.SMTPServerDisconnected, OSError)


class Stream:
    """Wraps a session whose relay offers PIPELINING."""

    def __init__(self, session: Session, settle, before_dot):
        self.session = session
        self.settle = settle
        self.before_dot = before_dot
        # What the last write asks replies for, in order: ("dot", tag) and/or
        # ("envelope", tag, content).
        self.owed: list[tuple] = []
        self.held: tuple | None = None          # (tag, content): its 354 is in, its dot owed

    @property
    def busy(self) -> bool:
        """Whether a message is still open on the session (its result not settled)."""
        return bool(self.owed) or self.held is not None

    def send(self, tag, mail_from: str, rcpt: str, data: bytes, eight_bit: bool) -> None:
        """Settles what the replies of the previous write decided, then writes the held
        message's content and dot with this message's envelope."""
        self._collect()
        for address in (mail_from, rcpt):
            if any(c in address for c in "\r\n<>") or not address.isascii():
                self.settle(tag, DeliveryError(f"not a usable SMTP address: {address!r}"))
                self._write(None)
                return
        body = " BODY=8BITMIME" if eight_bit else ""
        envelope = f"MAIL FROM:<{mail_from}>{body}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode("ascii")
        self._write((tag, envelope, data, eight_bit))

    def finish(self) -> None:
        """Ends the held message and settles everything still open."""
        self._collect()
        if self.held is not None:
            self._write(None)
            self._collect()

    def abandon(self) -> None:
        """Hangs up: a held message never gets its dot, so the relay discards it. A dot
        already sent stays unsettled (its row is what `ledger.recover` puts in doubt)."""
        self.owed, self.held = [], None
        self.session.drop()

    # --- steps ---------------------------------------------------------------------------------

    def _write(self, message: tuple | None) -> None:
        """One write: the held content and its dot (if any), then the envelope (if any)."""
        session = self.session
        ending, self.held = self.held, None
        parts = []
        if ending is not None:
            try:
                self.before_dot()
            except BaseException:
                self.abandon()
                raise
            parts.append(dot_stuffed(ending[1]) + b".\r\n")
        if message is not None:
            tag, envelope, data, eight_bit = message
            if ending is None:          # nothing of ours open on the session: (re)connect
                error = self._open(eight_bit)
                if error is not None:
                    self.settle(tag, error)
                    return
            parts.append(envelope)
        if not parts:
            return
        for attempt in (1, 2):
            try:
                session.conn.send(b"".join(parts))
                break
            except _BROKEN as exc:
                session.drop()
                if ending is None and session.reused and attempt == 1:
                    error = self._open(eight_bit)          # an idle session had gone stale
                    if error is None:
                        continue
                    self.settle(tag, error)
                    return
                if ending is not None:
                    self.settle(ending[0], self._in_doubt(exc))
                if message is not None:
                    self.settle(tag, self._dropped(exc))
                return
        if ending is not None:
            self.owed.append(("dot", ending[0]))
        if message is not None:
            self.owed.append(("envelope", tag, data))

    def _open(self, eight_bit: bool) -> DeliveryError | None:
        session = self.session
        try:
            session.open()
        except DeliveryError as exc:
            return exc
        if eight_bit and not session.conn.has_extn("8bitmime"):
            return DeliveryError(f"relay {session.relay.name} does not take 8bit messages "
                                 "(8BITMIME)", temporary=True)
        return None

    def _collect(self) -> None:
        """Reads the replies the last write asked for and settles what they decide."""
        owed, self.owed = self.owed, []
        for position, item in enumerate(owed):
            try:
                if self.session.conn is None:
                    raise smtplib.SMTPServerDisconnected("the relay closed the session")
                if item[0] == "dot":
                    self.settle(item[1], self._final_reply(self.session.conn.getreply()))
                else:
                    replies = [self.session.conn.getreply() for _ in range(3)]
                    error = self._envelope_error(replies)
                    if error is None:
                        self.held = (item[1], item[2])
                    else:
                        self.settle(item[1], error)
            except _BROKEN as exc:
                self.session.drop()
                for kind, tag, *_ in owed[position:]:
                    self.settle(tag, self._in_doubt(exc) if kind == "dot" else self._dropped(exc))
                return

    def _final_reply(self, reply: tuple[int, bytes]) -> Reply | DeliveryError:
        """The answer to a final dot. A refusal ends the transaction by itself: no RSET (the
        next envelope's replies are on their way)."""
        code, text = reply
        name = self.session.relay.name
        if code == 250:
            return Reply(name, code, _text(text))
        if code == 421 or code < 0:
            self.session.drop()
        return DeliveryError(f"relay {name} answered end of DATA: {code} {_text(text)}",
                             temporary=400 <= code < 500 or code < 0, code=code)

    def _envelope_error(self, replies: list[tuple[int, bytes]]) -> DeliveryError | None:
        """None if the relay waits for the content (the envelope is always a write's last
        part, so nothing else is outstanding here and RSET may run)."""
        (mail, _), (rcpt, _), (start, _) = replies
        session = self.session
        if start == 354 and mail == 250 and rcpt in (250, 251):
            return None
        if start == 354:
            session.conn.send(b".\r\n")       # RFC 2920: end the empty transaction
            session.conn.getreply()
        for stage, (code, text) in zip(("MAIL FROM", "RCPT TO", "DATA"), replies, strict=True):
            if not (code == 250 or (stage == "RCPT TO" and code == 251) or
                    (stage == "DATA" and code == 354)):
                try:
                    session._refused(stage, code, text)
                except DeliveryError as exc:
                    return exc
        raise AssertionError("a refused envelope names its stage")

    def _in_doubt(self, exc: BaseException) -> DeliveryError:
        return DeliveryError(f"relay {self.session.relay.name} dropped the connection during "
                             f"DATA: {_describe(exc)}", temporary=True, in_doubt=True)

    def _dropped(self, exc: BaseException) -> DeliveryError:
        return DeliveryError(f"relay {self.session.relay.name} dropped the connection: "
                             f"{_describe(exc)}", temporary=True)
