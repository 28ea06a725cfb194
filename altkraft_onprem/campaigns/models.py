"""Campaigns and their delivery ledger: tables and the pure rules around them."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime
from altkraft_onprem.i18n import N_

STATES = ("draft", "scheduled", "running", "paused", "finished", "cancelled")
# Shown through _() on the pages; marked here so the catalogue has them.
STATE_LABELS = (N_("draft"), N_("scheduled"), N_("running"), N_("paused"), N_("finished"),
                N_("cancelled"), N_("sent"), N_("failed"), N_("in_doubt"), N_("skipped"),
                N_("held"))
# Which lifecycle moves each action allows: action -> {from state: to state}.
MOVES = {
    "schedule": {"draft": "scheduled"},
    "start": {"draft": "running", "scheduled": "running"},
    "pause": {"running": "paused", "scheduled": "draft"},
    "resume": {"paused": "running"},
    "cancel": {"draft": "cancelled", "scheduled": "cancelled", "running": "cancelled",
               "paused": "cancelled"},
}
# Ledger row states. queued/leased are in progress; held rows (a split test's remaining
# audience waiting for the winner, or what is over a warm-up's daily quota) are never
# claimed; the others are final.
ROW_STATES = ("queued", "leased", "held", "sent", "failed", "in_doubt", "skipped", "cancelled")
FINAL_ROW_STATES = ("sent", "failed", "in_doubt", "skipped", "cancelled")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")
MAX_UTM_LENGTH = 200          # characters of one UTM value (campaign-wide or per link)

campaigns = Table(
    "campaigns", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("state", String(16), nullable=False, default="draft"),
    Column("message_id", Integer, ForeignKey("messages.id"), nullable=False),
    Column("version_id", Integer, nullable=True),            # pinned when the campaign starts
    Column("from_email", String(320), nullable=False),
    Column("from_name", String(200), nullable=False, default=""),
    Column("reply_to", String(320), nullable=True),
    Column("list_ids", JSON, nullable=False),
    Column("segment_ids", JSON, nullable=False),
    Column("exclude_list_ids", JSON, nullable=False),
    Column("exclude_segment_ids", JSON, nullable=False),
    Column("utm", JSON, nullable=False),                     # {utm_source: …} campaign defaults
    Column("link_utm", JSON, nullable=False),                # {"3": {utm_content: …}} per link
    Column("track_opens", Boolean, nullable=False, default=True),
    Column("track_clicks", Boolean, nullable=False, default=True),
    Column("schedule_at", UTCDateTime, nullable=True),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("pause_reason", Text, nullable=True),
    Column("ledger_built", Boolean, nullable=False, default=False),
    Column("total", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    # A workflow's send-email node (automation): its ledger takes a row per occurrence while
    # the workflow runs; it has no lists and never finishes by itself.
    Column("workflow_id", Integer, nullable=True),
    # The send run that holds the campaign (campaigns/runs.py): one at a time, whichever
    # process or host it is on.
    Column("run_owner", String(120), nullable=True),
    Column("run_until", UTCDateTime, nullable=True),
    # The transactional API's carrier of one message version (campaigns/transactional.py): its
    # ledger takes a row per accepted request; it has no lists, tracks nothing and stays running.
    Column("transactional", Boolean, nullable=False, default=False, server_default="0"),
    # Local-time delivery (campaigns/localtime.py): {time, fallback_timezone, quiet_hours};
    # the zones its ledger rows are in (a row's `zone` indexes this list).
    Column("send_at_local", JSON, nullable=True),
    Column("local_zones", JSON, nullable=True),
    # Published on its lists' public archive pages once finished (sending/archive.py).
    Column("archive", Boolean, nullable=False, default=False, server_default="0"),
)
Index("ix_campaigns_state_schedule", campaigns.c.state, campaigns.c.schedule_at)

deliveries = Table(
    "campaign_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("variant", Integer, nullable=False, default=0),
    Column("state", String(12), nullable=False, default="queued"),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("first_attempt_at", UTCDateTime, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("message_id", String(200), nullable=True),
    Column("reply", Text, nullable=True),
    Column("done_at", UTCDateTime, nullable=True),
    # A split test's test portion (figures that choose the winner count these rows only).
    Column("test_group", Boolean, nullable=False, default=False),
    # 0 for a campaign; a workflow's send node numbers each time a person reaches it, so
    # re-entry can send again while one occurrence is still sent at most once.
    Column("occurrence", BigInteger, nullable=False, default=0, server_default="0"),
    Column("context", JSON, nullable=True),      # a workflow's triggering event: {{ event.… }}
    # A local-time campaign's zone of this recipient: an index into campaigns.local_zones.
    Column("zone", SmallInteger, nullable=True),
    # Why a held row waits: NULL for a split test's rest (the winner releases it), "warmup"
    # for a warm-up's quota (deliverability releases it day by day; the mark stays after).
    Column("hold", String(8), nullable=True),
    UniqueConstraint("campaign_id", "subscriber_id", "occurrence",
                     name="uq_campaign_deliveries_occurrence"),
)
Index("ix_campaign_deliveries_claim", deliveries.c.campaign_id, deliveries.c.state, deliveries.c.id)
Index("ix_campaign_deliveries_owner", deliveries.c.lease_owner)
# The subscriber timeline (audience) lists the campaigns one person received.
Index("ix_campaign_deliveries_subscriber", deliveries.c.subscriber_id)
# Inbound mail attributes a bounce or complaint by the original's Message-ID as a last resort.
Index("ix_campaign_deliveries_message_id", deliveries.c.message_id)

# The transactional API's own ledger: one row per accepted request, its ledger row in
# campaign_deliveries (campaign, subscriber — 0 for an address outside the audience —,
# occurrence = this id). The same idempotency key answers the same row.
TRANSACTIONAL_MODES = ("existing", "create", "external")
transactional_sends = Table(
    "transactional_sends", metadata,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("request_hash", String(64), nullable=False),   # the same key with another request: 409
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("message_id", Integer, nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("mode", String(10), nullable=False),
    Column("category", String(64), nullable=True),
    Column("strict", Boolean, nullable=False, default=False),   # category strictly transactional
    Column("token_id", Integer, nullable=True),
    Column("created_by", String(320), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_transactional_sends_created", transactional_sends.c.created_at)
Index("ix_transactional_sends_category", transactional_sends.c.category,
      transactional_sends.c.created_at)
Index("ix_transactional_sends_subscriber", transactional_sends.c.subscriber_id)

# Circuit breakers per mailbox provider (campaigns/breakers.py): while one is open, nothing is
# sent to that provider; the senders keep its rows in the queue. One row per provider that
# ever tripped: closed again by a person (closed_at: later trips judge what was sent since).
BREAKER_STATES = ("open", "closed")
provider_breakers = Table(
    "provider_breakers", metadata,
    Column("provider", String(16), primary_key=True),
    Column("state", String(8), nullable=False),
    Column("reason", Text, nullable=False, default=""),     # in English (logs, the audit log)
    Column("campaign_id", Integer, nullable=True),          # the campaign whose figures tripped it
    Column("figures", JSON, nullable=True),                 # {blocked, messages, percent, limit}
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("closed_by", String(320), nullable=True),
)

# Split tests: variants 1..N (row variant 0 is a campaign without a test), shown as A..E.
SPLIT_METRICS = ("opens", "clicks", "click_to_open")
SPLIT_METRIC_LABELS = {"opens": N_("unique opens"), "clicks": N_("unique clicks"),
                       "click_to_open": N_("click-to-open rate")}
SPLIT_STATES = ("pending", "testing", "decided")
MIN_VARIANTS, MAX_VARIANTS = 2, 5
# The split test's wait, in hours, any fraction (0.05 h = 3 minutes): the service, the API model
# and the form's input all take their bounds from here.
MAX_WAIT_HOURS = 720

split_tests = Table(
    "campaign_split_tests", metadata,
    Column("campaign_id", Integer, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("variants", JSON, nullable=False),        # [{subject, from_name, message_id, version_id}]
    Column("test_percent", Integer, nullable=False),
    Column("metric", String(16), nullable=False),
    Column("wait_hours", Float, nullable=False),
    Column("state", String(12), nullable=False, default="pending"),
    Column("decide_at", UTCDateTime, nullable=True),  # start + wait; set when the campaign starts
    Column("winner", Integer, nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decided_by", String(320), nullable=True),
    Column("results", JSON, nullable=True),           # the figures the winner was chosen on
)


def unsubscribe_list(list_ids) -> int | None:
    """The list an unsubscribe through a campaign's own links (page, one-click, mailto) leaves:
    the campaign's only list; None (everything) when it went to several."""
    lists = list(list_ids or [])
    return lists[0] if len(lists) == 1 else None


def lists_label(list_ids: list[int], names: dict[int, str]) -> str:
    """`{{ list.name }}` of a campaign's message: its lists' names, in its order."""
    return ", ".join(names.get(i, "") for i in list_ids)


def variant_letter(variant: int) -> str:
    """1 -> "A", 2 -> "B" … (0, a campaign without a split test, has no letter)."""
    return chr(ord("A") + variant - 1) if variant >= 1 else ""


def with_utm(url: str, marks: dict[str, str]) -> str:
    """The URL with the UTM marks it does not carry yet (never duplicated, fragment kept)."""
    marks = {k: v for k, v in marks.items() if k in UTM_KEYS and v}
    if not marks:
        return url
    parts = urlsplit(url)
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    missing = [(k, marks[k]) for k in UTM_KEYS if k in marks and k not in present]
    if not missing:
        return url
    query = parts.query + ("&" if parts.query else "") + urlencode(missing)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def link_marks(utm: dict, link_utm: dict, index: int) -> dict[str, str]:
    """Campaign UTM defaults overridden by the link's own settings."""
    marks = {k: v for k, v in (utm or {}).items() if k in UTM_KEYS}
    marks.update({k: v for k, v in ((link_utm or {}).get(str(index)) or {}).items() if k in UTM_KEYS})
    return marks
