"""Tracking events: one row per open, reading-time stream and click; pure labelling rules.

Events reference campaigns, subscribers and message versions by id only (no foreign keys):
they are written in batches by the web workers and must never fail because a campaign was
deleted meanwhile. `machine` marks fetches no person made (with `reason`); reports show human
and total figures side by side instead of hiding them.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    false,
    true,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime

OPEN, READ, CLICK = "open", "read", "click"
GLANCED, SKIMMED, READ_CLASS, UNMEASURABLE = "glanced", "skimmed", "read", "unmeasurable"
READ_CLASSES = (GLANCED, SKIMMED, READ_CLASS)

# machine reasons
HEAD, MPP, SCANNER, HONEYPOT = "head", "mpp", "scanner", "honeypot"
# an open fetched by a person's image proxy (Gmail): human, but its reading time is unknowable
PROXY = "proxy"

tracking_events = Table(
    "tracking_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("campaign_id", Integer, nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("link_index", Integer, nullable=True),
    Column("machine", Boolean, nullable=False),
    Column("reason", String(16), nullable=True),
    Column("read_seconds", Float, nullable=True),
    Column("read_class", String(16), nullable=True),
    Column("user_agent", String(300), nullable=False),
    Column("ip", String(64), nullable=False),
)
# Both cover what the reports read, so that they are answered from the index alone:
# per campaign (unique/human opens and clicks, over time) and per subscriber (cohorts, timeline).
Index("ix_tracking_events_campaign", tracking_events.c.campaign_id, tracking_events.c.kind,
      tracking_events.c.machine, tracking_events.c.subscriber_id, tracking_events.c.at)
Index("ix_tracking_events_subscriber", tracking_events.c.subscriber_id, tracking_events.c.kind,
      tracking_events.c.machine, tracking_events.c.at)
# The clickmap (per version and link) and the versions a campaign's events name.
Index("ix_tracking_events_version", tracking_events.c.campaign_id, tracking_events.c.version_id,
      tracking_events.c.kind, tracking_events.c.link_index, tracking_events.c.machine,
      tracking_events.c.subscriber_id)

# Cohort roll-up, kept by every flush (tracking/rollup.py): which subscriber was already counted
# as active in a week/month, and per (cohort, activity period, metric, source) how many were.
engagement_seen = Table(
    "engagement_seen", metadata,
    Column("subscriber_id", Integer, primary_key=True),
    Column("metric", String(8), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("bucket", String(16), primary_key=True),
)
engagement_cohorts = Table(
    "engagement_cohorts", metadata,
    Column("period", String(8), primary_key=True),
    Column("metric", String(8), primary_key=True),
    Column("cohort", String(16), primary_key=True),
    Column("bucket", String(16), primary_key=True),
    Column("source", String(100), primary_key=True),
    Column("count", Integer, nullable=False),
)
# Per person, period kind and metric: which periods after joining the person was active in,
# bit k = active k periods after the join period (k < ACTIVE_BITS). Kept with the two tables
# above; the cohort report filtered by a list reads one row per member from it instead of every
# active period (engagement_cohorts has no list: membership changes would have to update it).
ACTIVE_BITS = 63
engagement_activity = Table(
    "engagement_activity", metadata,
    Column("subscriber_id", Integer, primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("metric", String(8), primary_key=True),
    Column("active", BigInteger, nullable=False),
)

# "machine = false" (not "IS false"): an indexable comparison on both databases
HUMAN = tracking_events.c.machine == false()
MACHINE = tracking_events.c.machine == true()


def classify_read(seconds: float, glance: float, read: float) -> str:
    """glanced (< glance s), skimmed (glance..read s) or read (>= read s)."""
    if seconds < glance:
        return GLANCED
    if seconds < read:
        return SKIMMED
    return READ_CLASS


@lru_cache(maxsize=32)
def _networks(cidrs: tuple[str, ...]):
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def in_networks(ip: str, cidrs: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in _networks(cidrs))


_PROXY_MARKERS = ("GoogleImageProxy", "YahooMailProxy", "via ggpht.com")
_SCANNER_MARKERS = ("Barracuda", "Mimecast", "Proofpoint", "MessageLabs", "Symantec",
                    "SafeLinks", "Trend Micro", "Sophos", "bot", "Bot", "spider", "crawler",
                    "python-requests", "curl/", "Wget")


def image_fetch_label(user_agent: str, ip: str, apple_networks: tuple[str, ...]) -> str | None:
    """MPP (Apple's prefetching proxy: machine), PROXY (a person via Gmail/Yahoo's proxy) or None.

    Apple Mail Privacy Protection fetches every image from Apple's network with a bare
    "Mozilla/5.0" user agent whether or not anyone opens the message."""
    if any(marker in user_agent for marker in _PROXY_MARKERS):
        return PROXY
    if user_agent.strip() in ("Mozilla/5.0", "") and in_networks(ip, apple_networks):
        return MPP
    return None


def scanner_agent(user_agent: str) -> bool:
    return any(marker in user_agent for marker in _SCANNER_MARKERS)


def anonymise_ip(ip: str) -> str:
    """IPv4 /24, IPv6 /48: enough for country statistics, not for identifying a household."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)

# Campaign roll-up, kept by every flush (tracking/campaign_rollup.py) so that a campaign report
# reads a few hundred rows instead of the campaign's events. `variant` is the recipient's
# ledger variant (0 without a split test); reports sum it away unless a variant is chosen.
campaign_counts = Table(            # events by kind, machine label and reading class
    "campaign_counts", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("variant", Integer, primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("machine", Boolean, primary_key=True),
    Column("read_class", String(16), primary_key=True),      # "" for opens and clicks
    Column("events", Integer, nullable=False),
    Column("read_seconds", Float, nullable=False),            # sum, for the average
)
campaign_hours = Table(             # events per hour (the over-time chart; days are summed hours)
    "campaign_hours", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("variant", Integer, primary_key=True),
    Column("hour", String(16), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("machine", Boolean, primary_key=True),
    Column("events", Integer, nullable=False),
)
campaign_people = Table(            # who was already counted: metric open/open_h/click/click_h
    "campaign_people", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("subscriber_id", Integer, primary_key=True),
    Column("metric", String(8), primary_key=True),
)
campaign_uniques = Table(           # people per metric and recipient domain
    "campaign_uniques", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("variant", Integer, primary_key=True),
    Column("domain", String(255), primary_key=True),
    Column("metric", String(8), primary_key=True),
    Column("people", Integer, nullable=False),
)
campaign_agents = Table(            # openers by the user agent of their first open
    "campaign_agents", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("variant", Integer, primary_key=True),
    Column("user_agent", String(300), primary_key=True),
    Column("people", Integer, nullable=False),
)
