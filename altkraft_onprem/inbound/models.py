"""Inbound mail tables: the intake (raw messages as they arrived) and what they turned out to be."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime
from altkraft_onprem.i18n import N_

# Ways in (inbound_messages.source).
SOURCES = ("smtp", "imap", "webhook", "replay")
# new: stored, not parsed yet. The rest are final: processed (an outcome was applied), ignored
# (an auto-reply, a delay warning, a not-spam report), unmatched (no verifiable link to a
# message we sent), review (ours, but not understood: a person decides), failed (the parser
# could not read it; the raw message is kept).
STATES = ("new", "processed", "ignored", "unmatched", "review", "failed")
STATE_LABELS = {"new": N_("waiting"), "processed": N_("processed"), "ignored": N_("ignored"),
                "unmatched": N_("unmatched"), "review": N_("to review"), "failed": N_("unreadable")}
BOUNCE_CLASSES = ("hard", "soft", "policy", "content", "unknown")
CLASS_LABELS = {"hard": N_("hard"), "soft": N_("soft"), "policy": N_("policy / reputation"),
                "content": N_("content"), "unknown": N_("unknown")}

_id = BigInteger().with_variant(Integer, "sqlite")

inbound_messages = Table(
    "inbound_messages", metadata,
    Column("id", _id, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(16), nullable=False),
    Column("peer", String(64), nullable=False, default=""),
    Column("mail_from", String(320), nullable=False, default=""),
    Column("rcpt", String(320), nullable=False, default=""),
    Column("size", Integer, nullable=False),
    # sha256 of recipient and message: a retried delivery of the same message is stored once
    Column("digest", String(64), nullable=False, unique=True),
    Column("raw", LargeBinary, nullable=False),          # zlib-compressed message as received
    Column("state", String(12), nullable=False, default="new"),
    Column("outcome", String(16), nullable=True),        # bounce, complaint, unsubscribe, ...
    Column("subject", String(200), nullable=False, default=""),
    Column("campaign_id", Integer, nullable=True),
    Column("subscriber_id", Integer, nullable=True),
    Column("detail", Text, nullable=False, default="{}"),  # JSON: what the parser found
    Column("processed_at", UTCDateTime, nullable=True),
    # Which pipeline worker judges it now (holders.owner_name), until when: saves a second
    # worker the same parsing; exactly once rests on `state`.
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
)
Index("ix_inbound_messages_state", inbound_messages.c.state, inbound_messages.c.id)
Index("ix_inbound_messages_received_at", inbound_messages.c.received_at)
# The circuit breaker's "which of these recipients did this campaign's mail come back deferred
# for" (inbound/monitor.py): a lookup, not a scan of every message ever received.
Index("ix_inbound_messages_campaign", inbound_messages.c.campaign_id, inbound_messages.c.outcome,
      inbound_messages.c.subscriber_id)

def _reported() -> list[Column]:
    """What a bounce and a complaint both carry: where it came from (source: dsn, heuristic,
    arf, relay, webhook, api), when, and whom and which campaign it is about."""
    return [
        Column("id", _id, primary_key=True),
        Column("inbound_id", _id, ForeignKey("inbound_messages.id", ondelete="SET NULL"),
               nullable=True),
        Column("at", UTCDateTime, nullable=False),
        Column("source", String(16), nullable=False),
        Column("subscriber_id", Integer, nullable=True),
        Column("campaign_id", Integer, nullable=True),
        Column("email", String(320), nullable=False, default=""),
        Column("provider", String(16), nullable=False, default="other"),
    ]


bounces = Table(
    "bounces", metadata,
    *_reported(),
    Column("bounce_class", String(12), nullable=False),
    Column("rule", String(40), nullable=False),          # the rule of the table that matched
    Column("rules_version", Integer, nullable=False),
    Column("status", String(16), nullable=False, default=""),      # enhanced status, 5.1.1
    Column("action", String(16), nullable=False, default="failed"),
    Column("diagnostic", Text, nullable=False, default=""),
    Column("remote_mta", String(255), nullable=False, default=""),
    Column("suppressed", Boolean, nullable=False, default=False),
)
Index("ix_bounces_campaign", bounces.c.campaign_id, bounces.c.bounce_class)
Index("ix_bounces_subscriber", bounces.c.subscriber_id, bounces.c.at)
Index("ix_bounces_at", bounces.c.at)

complaints = Table(
    "complaints", metadata,
    *_reported(),
    Column("feedback_type", String(16), nullable=False, default="abuse"),
    Column("reporter", String(200), nullable=False, default=""),   # the FBL's User-Agent
)
Index("ix_complaints_campaign", complaints.c.campaign_id)
Index("ix_complaints_subscriber", complaints.c.subscriber_id)
Index("ix_complaints_at", complaints.c.at)

# Deliverability alerts raised by what comes back: one row per (kind, campaign, provider,
# level), counted up while it recurs. Kinds: complaint_rate (level warning or paused), policy
# (blocklists, authentication: level warning), content (level warning), breaker (level
# stopped: the provider's circuit breaker opened, campaigns/breakers.py).
ALERT_KINDS = ("complaint_rate", "policy", "content", "breaker")
ALERT_LABELS = {"complaint_rate": N_("complaint rate"), "policy": N_("blocked by policy or reputation"),
                "content": N_("content rejected"), "warning": N_("warning"), "paused": N_("campaign paused"),
                "breaker": N_("sending to the provider paused"), "stopped": N_("stopped"),
                # raised by deliverability's DNS and blocklist checks (subject: what got worse)
                "dns": N_("DNS check got worse"), "blocklist": N_("listed on a blocklist"),
                "fail": N_("fail"), "missing": N_("missing")}
alerts = Table(
    "deliverability_alerts", metadata,
    Column("id", _id, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("level", String(12), nullable=False),
    Column("campaign_id", Integer, nullable=True),
    Column("provider", String(16), nullable=False, default="other"),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("count", Integer, nullable=False, default=1),
    Column("detail", Text, nullable=False, default=""),
    # What a DNS or blocklist alert (deliverability's checks) is about: "example.com spf".
    Column("subject", String(255), nullable=False, default="", server_default=""),
)
Index("ix_deliverability_alerts_last_at", alerts.c.last_at)

# DMARC aggregate reports (RFC 7489 appendix C): one row per report, and its records per day,
# source IP and result. A report sent twice (same organisation and report id) is kept once.
dmarc_reports = Table(
    "dmarc_reports", metadata,
    Column("id", _id, primary_key=True),
    Column("inbound_id", _id, ForeignKey("inbound_messages.id", ondelete="SET NULL"), nullable=True),
    Column("org_name", String(200), nullable=False),
    Column("report_id", String(200), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("policy", String(16), nullable=False, default=""),
    Column("begin_at", UTCDateTime, nullable=False),
    Column("end_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_name", "report_id", name="uq_dmarc_reports_org_name"),
)
dmarc_rows = Table(
    "dmarc_rows", metadata,
    Column("id", _id, primary_key=True),
    Column("report_id", _id, ForeignKey("dmarc_reports.id", ondelete="CASCADE"), nullable=False),
    Column("day", String(10), nullable=False),           # YYYY-MM-DD (UTC) of the interval
    Column("source_ip", String(45), nullable=False),
    Column("header_from", String(255), nullable=False, default=""),
    Column("count", Integer, nullable=False),
    Column("disposition", String(16), nullable=False, default="none"),
    Column("dkim", String(8), nullable=False),           # pass / fail (policy evaluated)
    Column("spf", String(8), nullable=False),
    Column("passed", Boolean, nullable=False),           # DMARC pass: SPF or DKIM aligned and passing
)
Index("ix_dmarc_rows_day", dmarc_rows.c.day, dmarc_rows.c.source_ip)
Index("ix_dmarc_rows_report", dmarc_rows.c.report_id)
