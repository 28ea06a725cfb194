"""Back-to-back messages on one pipelining SMTP session: one round trip per message.

RFC 2920 lets message content open a pipelined group, so the final dot of one message goes
out together with MAIL, RCPT and DATA of the next, and their four replies come back
together. `Stream.transfer` therefore leaves each message's content at the relay *without*
its final dot; the next `transfer` (or `finish`) ends it. Until the dot arrives the relay
keeps nothing, so `before_dot` — the sender's "the previous reply is on disk" — runs right
before each dot, which keeps in-doubt messages to one per session.

Results come back as values, not exceptions, because one call settles two messages: the
previous one (its final reply) and the new one (refused or now waiting for its dot).
"""
from __future__ import annotations

import smtplib

from .errors import DeliveryError
from .smtp import Reply, Session, _describe, _text, dot_stuffed


class Stream:
    """Wraps a session whose relay offers PIPELINING; `open_content`: a dot is owed."""

    def __init__(self, session: Session):
        self.session = session
        self.open_content = False

    def transfer(self, mail_from: str, rcpt: str, data: bytes, eight_bit: bool,
                 before_dot) -> tuple[Reply | DeliveryError | None, DeliveryError | None]:
        """Ends the previous message (if its content is out) and starts this one: (the
        previous message's result or None, this message's error or None). Exceptions of
        `before_dot` pass through after the session is dropped (nothing ends then)."""
        session = self.session
        for address in (mail_from, rcpt):
            if any(c in address for c in "\r\n<>") or not address.isascii():
                if self.open_content:
                    return self._end(before_dot), DeliveryError(
                        f"not a usable SMTP address: {address!r}")
                return None, DeliveryError(f"not a usable SMTP address: {address!r}")
        body = " BODY=8BITMIME" if eight_bit else ""
        envelope = f"MAIL FROM:<{mail_from}>{body}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode("ascii")
        previous = None
        if self.open_content:
            self._before_dot(before_dot)
            self.open_content = False
            try:
                session.conn.send(b".\r\n" + envelope)
                previous = self._final_reply(session.conn.getreply())
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                session.drop()
                return self._in_doubt(exc), self._dropped(exc)
            if session.conn is None:            # 421 after the dot: the relay hung up
                return previous, DeliveryError(f"relay {session.relay.name} closed the session",
                                               temporary=True)
        else:
            error = self._send_envelope(envelope, eight_bit)
            if error is not None:
                return None, error
        try:
            replies = [session.conn.getreply() for _ in range(3)]
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            session.drop()
            return previous, self._dropped(exc)
        error = self._envelope_error(replies)
        if error is not None:
            return previous, error
        data = dot_stuffed(data)
        try:
            session.conn.send(data)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            session.drop()
            return previous, self._dropped(exc)
        self.open_content = True
        return previous, None

    def finish(self, before_dot) -> Reply | DeliveryError | None:
        """Ends the message whose content is out (None if there is none)."""
        if not self.open_content:
            return None
        return self._end(before_dot)

    def abandon(self) -> None:
        """Hangs up without a final dot: the relay discards the message in progress."""
        if self.open_content:
            self.open_content = False
            self.session.drop()

    # --- steps ---------------------------------------------------------------------------------

    def _before_dot(self, before_dot) -> None:
        try:
            before_dot()
        except BaseException:
            self.abandon()
            raise

    def _end(self, before_dot) -> Reply | DeliveryError:
        self._before_dot(before_dot)
        self.open_content = False
        session = self.session
        try:
            session.conn.send(b".\r\n")
            return self._final_reply(session.conn.getreply())
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            session.drop()
            return self._in_doubt(exc)

    def _send_envelope(self, envelope: bytes, eight_bit: bool) -> DeliveryError | None:
        session = self.session
        for attempt in (1, 2):
            try:
                session.open()
            except DeliveryError as exc:
                return exc
            if eight_bit and not session.conn.has_extn("8bitmime"):
                return DeliveryError(f"relay {session.relay.name} does not take 8bit messages "
                                     "(8BITMIME)", temporary=True)
            try:
                session.conn.send(envelope)
                return None
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                session.drop()
                if not (session.reused and attempt == 1):
                    return self._dropped(exc)
        return None

    def _final_reply(self, reply: tuple[int, bytes]) -> Reply | DeliveryError:
        """The answer to a final dot. A refusal ends the transaction by itself: no RSET (the
        next envelope's replies may already be on their way)."""
        code, text = reply
        name = self.session.relay.name
        if code == 250:
            return Reply(name, code, _text(text))
        if code == 421 or code < 0:
            self.session.drop()
        return DeliveryError(f"relay {name} answered end of DATA: {code} {_text(text)}",
                             temporary=400 <= code < 500 or code < 0, code=code)

    def _envelope_error(self, replies: list[tuple[int, bytes]]) -> DeliveryError | None:
        (mail, _), (rcpt, _), (start, _) = replies
        session = self.session
        if start == 354 and mail == 250 and rcpt in (250, 251):
            return None
        if start == 354:
            try:                                  # RFC 2920: end the empty transaction
                session.conn.send(b".\r\n")
                session.conn.getreply()
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                session.drop()
                return self._dropped(exc)
        for stage, (code, text) in zip(("MAIL FROM", "RCPT TO", "DATA"), replies, strict=True):
            if not (code == 250 or (stage == "RCPT TO" and code == 251) or
                    (stage == "DATA" and code == 354)):
                return self._refusal(stage, code, text)
        return None

    def _refusal(self, stage: str, code: int, text) -> DeliveryError:
        try:
            self.session._refused(stage, code, text)
        except DeliveryError as exc:
            return exc
        raise AssertionError("_refused always raises")

    def _in_doubt(self, exc: BaseException) -> DeliveryError:
        return DeliveryError(f"relay {self.session.relay.name} dropped the connection during "
                             f"DATA: {_describe(exc)}", temporary=True, in_doubt=True)

    def _dropped(self, exc: BaseException) -> DeliveryError:
        return DeliveryError(f"relay {self.session.relay.name} dropped the connection: "
                             f"{_describe(exc)}", temporary=True)
