"""From a stored message to a verdict: parse it, attribute it, classify it. Reads only; the
verdict is applied by service.apply in a short write transaction, so parsing never holds the
database's write lock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection

from . import dmarc, rules
from . import parse as parser
from .addresses import BOUNCE, DMARC, UNSUBSCRIBE, Recogniser
from .attribution import Attribution, attribute

COMPLAINT_TYPES = ("abuse", "fraud")


@dataclass
class Verdict:
    state: str                      # processed, ignored, unmatched, review, failed
    outcome: str                    # bounce, complaint, unsubscribe, dmarc, auto_reply, delayed, deferred, not_spam, none
    subject: str = ""
    attribution: Attribution | None = None
    recipient: parser.Recipient | None = None
    bounce_class: str = ""
    rule: str = ""
    rules_version: int = rules.CURRENT_VERSION
    feedback_type: str = ""
    reporter: str = ""
    source: str = ""                # dsn, heuristic, arf, mailto, dmarc
    notes: list[str] = field(default_factory=list)
    report: dict | None = None      # a DMARC aggregate report (dmarc.read_report)

    def detail(self) -> dict:
        out: dict = {"notes": self.notes}
        if self.attribution:
            out["attributed_by"] = self.attribution.how
        if self.recipient:
            out["recipient"] = vars(self.recipient)
        if self.bounce_class:
            out.update(bounce_class=self.bounce_class, rule=self.rule, rules_version=self.rules_version)
        if self.feedback_type:
            out.update(feedback_type=self.feedback_type, reporter=self.reporter)
        if self.report:
            out["dmarc"] = {k: self.report[k] for k in ("org_name", "report_id", "domain", "policy")}
            out["dmarc"]["records"] = len(self.report["rows"])
        return out


def judge(conn: Connection, settings, recogniser: Recogniser, rcpt: str, raw: bytes) -> Verdict:
    mailbox = recogniser.recognise(rcpt)
    if mailbox is not None and mailbox.kind == UNSUBSCRIBE:
        return Verdict("processed", "unsubscribe", parser.parse(raw).subject,
                       Attribution(mailbox.subscriber_id, mailbox.campaign_id, "envelope"),
                       source="mailto")
    parsed = parser.parse(raw)
    if mailbox is not None and mailbox.kind == DMARC:
        try:
            return Verdict("processed", "dmarc", parsed.subject, source="dmarc",
                           report=dmarc.read_report(raw))
        except dmarc.DmarcError as exc:
            return Verdict("review", "dmarc", parsed.subject, notes=[str(exc)])
    found = attribute(conn, settings, recogniser.key, rcpt, parsed.original)
    verdict = _by_kind(parsed, found)
    verdict.subject, verdict.notes = parsed.subject, parsed.problems + verdict.notes
    if mailbox is None and rcpt:
        verdict.notes.append(f"{rcpt} is not one of the receiver's addresses")
    if mailbox is not None and mailbox.kind == BOUNCE and verdict.outcome == "complaint":
        verdict.notes.append("a feedback report that came to a bounce address")
    return verdict


def _unmatched_or(state: str, found: Attribution | None) -> str:
    return state if found is not None else "unmatched"


def _by_kind(parsed: parser.Parsed, found: Attribution | None) -> Verdict:
    if parsed.kind == "arf":
        kind = parsed.feedback_type
        verdict = Verdict("processed", "complaint", attribution=found, feedback_type=kind,
                          reporter=parsed.reporter, source="arf",
                          recipient=parsed.recipients[0] if parsed.recipients else None)
        if kind == "not-spam":
            verdict.state, verdict.outcome = "ignored", "not_spam"
        elif kind not in COMPLAINT_TYPES:
            verdict.state, verdict.outcome = "review", "none"
            verdict.notes.append(f"feedback type {kind!r} is not a complaint")
        verdict.state = _unmatched_or(verdict.state, found)
        return verdict
    if parsed.kind in ("dsn", "bounce"):
        source = "dsn" if parsed.kind == "dsn" else "heuristic"
        failed = [r for r in parsed.recipients if r.action == "failed"]
        if not parsed.recipients:
            return Verdict(_unmatched_or("review", found), "none", attribution=found, source=source)
        if not failed:
            # A delay is no bounce; one for policy reasons (4.7.x, a blocklist) is the
            # provider deferring us, which its circuit breaker counts (monitor.py).
            first = parsed.recipients[0]
            bounce_class, rule = rules.classify(first.status, first.diagnostic)
            deferred = first.action == "delayed" and bounce_class == "policy"
            return Verdict("ignored", "deferred" if deferred else "delayed", attribution=found,
                           recipient=first, source=source, bounce_class=bounce_class if deferred else "",
                           rule=rule if deferred else "",
                           notes=[f"action {first.action}: not a failure"])
        recipient = failed[0]
        bounce_class, rule = rules.classify(recipient.status, recipient.diagnostic)
        state = "review" if bounce_class == "unknown" else "processed"
        return Verdict(_unmatched_or(state, found), "bounce", attribution=found, recipient=recipient,
                       bounce_class=bounce_class, rule=rule, source=source)
    if parsed.kind == "auto_reply":
        return Verdict("ignored", "auto_reply", attribution=found)
    if parsed.problems:
        return Verdict(_unmatched_or("review", found) if found else "failed", "none", attribution=found)
    return Verdict(_unmatched_or("review", found), "none", attribution=found,
                   notes=["neither a bounce, a feedback report nor an auto-reply"])
