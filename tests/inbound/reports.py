"""Bounces, complaints and auto-replies as mailbox providers write them, built around a real
message the campaign sender produced (its headers are the "original")."""
from __future__ import annotations

from email.mime.text import MIMEText


def _headers_of(original: bytes) -> str:
    return original.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace") + "\r\n"


def _with_return_path(original: bytes, return_path: str | None) -> bytes:
    """The original as the recipient's server stored it: Return-Path added on delivery."""
    return (f"Return-Path: <{return_path}>\r\n".encode() if return_path else b"") + original


def _report(report_type: str, headers: str, parts: list[tuple[str, str]]) -> bytes:
    """A multipart/report written out as the reporting MTA writes it."""
    boundary = "=_report_boundary_42"
    out = [f"{headers}MIME-Version: 1.0\r\n"
           f'Content-Type: multipart/report; report-type={report_type};\r\n boundary="{boundary}"\r\n\r\n'
           "This is a MIME-encapsulated message.\r\n"]
    for content_type, body in parts:
        out.append(f"\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n{body}")
    out.append(f"\r\n--{boundary}--\r\n")
    return "".join(out).replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def dsn(original: bytes, *, recipient: str, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
        per_recipient: bool = True, headers_only: bool = True) -> bytes:
    """An RFC 3464 report as Postfix writes it."""
    blocks = "Reporting-MTA: dns; mx.example.net\nArrival-Date: Thu, 27 Nov 2026 10:00:00 +0000\n"
    if per_recipient:
        blocks += (f"\nFinal-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
                   f"Action: {action}\nStatus: {status}\nRemote-MTA: dns; mx.example.net\n"
                   f"Diagnostic-Code: {diagnostic.format(rcpt=recipient)}\n")
    original_part = ("text/rfc822-headers", _headers_of(original)) if headers_only else \
        ("message/rfc822", original.decode("utf-8", "replace"))
    return _report("delivery-status", (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\n"
        "To: bounces@bounces.example.com\nSubject: Undelivered Mail Returned to Sender\n"
        "Auto-Submitted: auto-replied\nMessage-ID: <dsn.1@mx.example.net>\n"), [
        ("text/plain; charset=us-ascii", "I'm sorry to have to inform you that your message "
                                         "could not be delivered.\n"),
        ("message/delivery-status", blocks), original_part])


def arf(original: bytes, *, feedback_type: str = "abuse", rcpt: str = "redacted@hotmail.com",
        user_agent: str = "Microsoft JMRP") -> bytes:
    """An RFC 5965 feedback report; the recipient in it redacted, as Microsoft's JMRP does."""
    fields = (f"Feedback-Type: {feedback_type}\nUser-Agent: {user_agent}\nVersion: 1\n"
              f"Original-Rcpt-To: {rcpt}\nArrival-Date: Thu, 27 Nov 2026 10:00:00 +0000\n")
    return _report("feedback-report", (
        "From: staff@hotmail.com\nTo: fbl@bounces.example.com\nSubject: complaint about message\n"
        "Message-ID: <arf.1@hotmail.com>\n"), [
        ("text/plain", "This is an email abuse report.\n"),
        ("message/feedback-report", fields),
        ("text/rfc822-headers", _headers_of(original))])


def auto_reply(to: str, subject: str = "Automatic reply: Скидки") -> bytes:
    message = MIMEText("I am out of the office until Monday.\n", "plain", "utf-8")
    message["From"] = "person@example.net"
    message["To"] = to
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-replied"
    return message.as_bytes()


def mailto_unsubscribe(to: str) -> bytes:
    message = MIMEText("unsubscribe\n")
    message["From"] = "person@example.net"
    message["To"] = to
    message["Subject"] = "unsubscribe"
    return message.as_bytes()


def redact(original: bytes, *drop: str) -> bytes:
    """The original with headers left out (Return-Path, List-Unsubscribe ...) and the To
    address replaced, as a provider hiding the recipient sends it."""
    head, _, body = original.partition(b"\r\n\r\n")
    lines, skip = [], False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                lines.append(line)
            continue
        name = line.split(b":", 1)[0].decode().lower()
        skip = name in {d.lower() for d in drop}
        if name == "to":
            lines.append(b"To: <redacted@hotmail.com>")
        elif not skip:
            lines.append(line)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
