"""Reading what came back: RFC 3464 delivery status notifications, RFC 5965 feedback (ARF)
reports, RFC 3834 auto-replies, and other bounces through flufl.bounce's detectors.

Everything here is pure (bytes in, a `Parsed` out) and never raises on bad input: a message
that cannot be read whole yields what could be read plus a note in `problems`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([45]\d\d)[ -]")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|vacation|away "
    r"from|abwesen|absence|r[ée]ponse automatique|автоответ|автоматический ответ|отпуск|"
    r"нет на месте|вне офиса)", re.I)
_ORIGINAL_LINES = re.compile(rb"(?mi)^(return-path|list-unsubscribe|message-id)[ \t]*:[ \t]*(.+)$")
MAX_TEXT = 2000          # diagnostic text kept per recipient
# A flufl.bounce detector that chokes on odd input logs a traceback and gives up; that is no
# verdict here (the next rule decides), not an error worth a log line per message.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)


@dataclass
class Recipient:
    """One recipient a report is about (a DSN's per-recipient block, or what a heuristic found)."""

    address: str = ""
    action: str = "failed"          # failed, delayed, delivered, relayed, expanded
    status: str = ""                # enhanced status code, "5.1.1"
    diagnostic: str = ""
    remote_mta: str = ""


@dataclass
class Parsed:
    kind: str                       # dsn, arf, auto_reply, bounce (heuristic), other
    subject: str = ""
    recipients: list[Recipient] = field(default_factory=list)
    feedback_type: str = ""         # ARF Feedback-Type, lower case
    reporter: str = ""              # ARF User-Agent
    original: dict[str, str] = field(default_factory=dict)   # return-path, list-unsubscribe, message-id
    problems: list[str] = field(default_factory=list)


def read(raw: bytes) -> Message:
    return BytesParser(policy=compat32).parsebytes(raw)


def _text(value) -> str:
    """A header value as plain text (RFC 2047 words decoded, folding undone)."""
    if value is None:
        return ""
    try:
        parts = decode_header(str(value))
        text = "".join(p.decode(c or "utf-8", "replace") if isinstance(p, bytes) else p
                       for p, c in parts)
    except Exception:  # noqa: BLE001 - bad encoded words (HeaderParseError, binascii): keep them raw
        text = str(value)
    return " ".join(text.split())


def parse(raw: bytes) -> Parsed:
    try:
        msg = read(raw)
    except Exception as exc:  # noqa: BLE001 - the parser's own failures are reported, not raised
        return Parsed("other", problems=[f"unreadable MIME: {exc.__class__.__name__}"])
    parsed = Parsed("other")
    try:
        parsed.subject = _text(msg.get("Subject"))[:200]
        _fill(msg, raw, parsed)
    except Exception as exc:  # noqa: BLE001 - malformed structure: keep what was found
        parsed.problems.append(f"malformed message: {exc.__class__.__name__}: {str(exc)[:200]}")
    return parsed


def _fill(msg: Message, raw: bytes, parsed: Parsed) -> None:
    report_type = (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
    report_type = str(report_type).lower()
    feedback = _part(msg, "message/feedback-report")
    status = _part(msg, "message/delivery-status")
    parsed.original = _original(msg, raw)
    if feedback is not None or report_type == "feedback-report":
        parsed.kind = "arf"
        fields = _fields(feedback)
        parsed.feedback_type = _text(fields.get("Feedback-Type")).lower()[:16] or "abuse"
        parsed.reporter = _text(fields.get("User-Agent"))[:200]
        rcpt = _address(_text(fields.get("Original-Rcpt-To")))
        parsed.recipients = [Recipient(address=rcpt, action="complained")]
        if feedback is None:
            parsed.problems.append("feedback report without its message/feedback-report part")
        return
    if status is not None or report_type == "delivery-status":
        parsed.kind = "dsn"
        parsed.recipients = _dsn_recipients(status)
        if not any(r.action == "failed" and r.address for r in parsed.recipients):
            # Malformed per-recipient fields (no address, no Action): the detectors may still
            # find who failed in the human-readable part.
            found = [r for r in _heuristic(msg, raw) if r.action == "failed"]
            if found:
                parsed.recipients = found
                parsed.problems.append("per-recipient fields unusable; recipients read from the text")
        if not parsed.recipients:
            parsed.problems.append("delivery status notification without per-recipient fields")
        return
    # Bounces that are not DSNs often carry Auto-Submitted too (Exim's do): detectors first.
    parsed.recipients = _heuristic(msg, raw)
    if parsed.recipients:
        parsed.kind = "bounce"
    elif _auto_reply(msg, parsed.subject):
        parsed.kind = "auto_reply"


def _part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _blocks(part: Message | None) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    if part is None:
        return []
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    if part.get("Content-Transfer-Encoding", "").lower() in ("base64", "quoted-printable"):
        text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return [HeaderParser(policy=compat32).parsestr(block.strip() + "\n")
            for block in re.split(r"\r?\n[ \t]*\r?\n", text) if block.strip()]


def _fields(part: Message | None) -> Message:
    blocks = _blocks(part)
    merged = Message()
    for block in blocks:
        for name, value in block.items():
            merged[name] = value
    return merged


def _address(value: str) -> str:
    """The address of "rfc822; a@b" (or a bare, possibly bracketed, address)."""
    value = value.partition(";")[2] if ";" in value else value
    value = value.strip().strip("<>").strip()
    return value[:320] if "@" in value else ""


def status_code(*texts: str) -> str:
    """The first enhanced status code ("5.1.1") in the texts, or "" when there is none."""
    for text in texts:
        found = _STATUS.search(text or "")
        if found:
            return found.group(0)
    return ""


def _dsn_recipients(part: Message | None) -> list[Recipient]:
    blocks = _blocks(part)
    found = []
    for block in blocks:
        # The address as we sent it (RFC 3464 Original-Recipient) before the one a forwarder
        # or gateway ended at (Final-Recipient: an alias target, an X.400 name).
        address = _address(_text(block.get("Original-Recipient"))) or \
            _address(_text(block.get("Final-Recipient")))
        action = _text(block.get("Action")).lower()
        if not address and not action:
            continue            # the per-message block (Reporting-MTA, Arrival-Date)
        diagnostic = _text(block.get("Diagnostic-Code"))
        diagnostic = diagnostic.partition(";")[2].strip() if diagnostic[:5].lower() == "smtp;" else diagnostic
        found.append(Recipient(
            address=address, action=(action.split() or ["failed"])[0][:16],
            status=status_code(_text(block.get("Status")), diagnostic),
            diagnostic=diagnostic[:MAX_TEXT],
            remote_mta=_address(_text(block.get("Remote-MTA"))) or
            _text(block.get("Remote-MTA")).partition(";")[2].strip()[:255]))
    return found


def _auto_reply(msg: Message, subject: str) -> bool:
    auto = _text(msg.get("Auto-Submitted")).lower()
    if auto and auto != "no":
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond") or msg.get("X-Autoresponder"):
        return True
    if _text(msg.get("Precedence")).lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(_AUTO_SUBJECT.search(subject))


def _heuristic(msg: Message, raw: bytes) -> list[Recipient]:
    """Non-standard bounces: flufl.bounce's detectors (Exim, qmail, Exchange, Yahoo, ...)."""
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector that chokes on odd input is no verdict
        return []
    text = _body_text(msg)
    found = []
    for addresses, action in ((permanent, "failed"), (temporary - permanent, "delayed")):
        for address in sorted(addresses):
            address = address.decode("utf-8", "replace") if isinstance(address, bytes) else str(address)
            found.append(Recipient(address=address[:320], action=action,
                                   status=status_code(_near(text, address)),
                                   diagnostic=_near(text, address)))
    return found


def _body_text(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_maintype() == "text" and len(chunks) < 8:
            payload = part.get_payload(decode=True) or b""
            chunks.append(payload[:200_000].decode(part.get_content_charset() or "utf-8", "replace")
                          if isinstance(payload, bytes) else str(payload))
    return "\n".join(chunks)


def _near(text: str, address: str) -> str:
    """The lines around the first mention of the address with an SMTP or status code."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if address.lower() in line.lower():
            window = " ".join(x.strip() for x in lines[index:index + 4])
            if _STATUS.search(window) or _SMTP_CODE.search(window):
                return window[:MAX_TEXT]
    for line in lines:
        if _STATUS.search(line) or _SMTP_CODE.search(line):
            return line.strip()[:MAX_TEXT]
    return ""


def _original(msg: Message, raw: bytes) -> dict[str, str]:
    """Return-Path, List-Unsubscribe and Message-ID of the message this report is about: from
    the attached original (message/rfc822 or text/rfc822-headers), else from header lines
    quoted in the body."""
    for part in msg.walk():
        content_type = part.get_content_type()
        headers = None
        if content_type == "message/rfc822":
            payload = part.get_payload()
            headers = payload[0] if isinstance(payload, list) and payload else None
        elif content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            headers = HeaderParser(policy=compat32).parsestr(text.decode("utf-8", "replace"))
        if headers is not None:
            found = {name: _text(headers.get(name)) for name in
                     ("return-path", "list-unsubscribe", "message-id") if headers.get(name)}
            if found:
                return found
    found = {}
    sections = re.split(rb"\r?\n\r?\n", raw[:1_000_000], maxsplit=1)
    body = sections[1] if len(sections) > 1 else b""        # not the report's own headers
    for name, value in _ORIGINAL_LINES.findall(body):
        key = name.decode().lower()
        if key not in found:
            found[key] = value.decode("utf-8", "replace").strip()[:2000]
    return found
