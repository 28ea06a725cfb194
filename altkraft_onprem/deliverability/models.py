"""Sending domains, their DKIM keys and the settings made in the UI: tables and pure rules."""
from __future__ import annotations

import ipaddress
import re

import idna
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime
from altkraft_onprem.i18n import N_

# A DKIM key's life: pending (made, its record not seen in DNS yet: it does not sign), active
# (signs), retiring (replaced by a rotation: no longer signs, its record stays published a
# while so that mail already sent still verifies).
KEY_STATES = ("pending", "active", "retiring")
KEY_STATE_LABELS = {"pending": N_("waiting for its DNS record"), "active": N_("signing"),
                    "retiring": N_("retiring (keep its record published)")}
ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
ALGORITHM_LABELS = {"rsa-sha256": "RSA-2048", "ed25519-sha256": "Ed25519"}

sending_domains = Table(
    "sending_domains", metadata,
    Column("id", Integer, primary_key=True),
    Column("domain", String(253), nullable=False, unique=True),      # normalised (A-labels)
    Column("bounce_domain", String(253), nullable=False, default=""),
    Column("tracking_host", String(253), nullable=False, default=""),
    Column("warmup", Boolean, nullable=False, default=False),
    Column("warmup_started_on", String(10), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

dkim_keys = Table(
    "dkim_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("domain_id", Integer, ForeignKey("sending_domains.id", ondelete="CASCADE"),
           nullable=False),
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("key_file", Text, nullable=False),
    Column("state", String(10), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("activated_at", UTCDateTime, nullable=True),
    Column("retiring_since", UTCDateTime, nullable=True),
    UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_selector"),
)

# One row per setting changed on the Settings page; its value is what the setting's parser
# accepts (config/declared.py), layered over the config file.
settings_overrides = Table(
    "settings_overrides", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSON, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(320), nullable=False),
)


class BadName(ValueError):
    """A domain, host or selector that cannot be used; str() says why."""


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def normalise_domain(text: str) -> str:
    """One form for a domain as people type it: surrounding spaces and one trailing dot go,
    upper case becomes lower, an internationalised name becomes its A-labels (xn--…,
    IDNA 2008 with the UTS 46 mapping). BadName says what is wrong."""
    name = (text or "").strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise BadName("a domain name is required")
    try:
        ipaddress.ip_address(name.strip("[]"))
        raise BadName(f"{text!r} is an IP address, not a domain name")
    except ValueError:
        pass
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise BadName(f"{text!r} is not a valid domain name ({exc})") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise BadName(f"{text!r} is not a full domain name (e.g. example.com)")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise BadName(f"{text!r} is not a valid domain name")
    if labels[-1].isdigit():
        raise BadName(f"{text!r} is not a domain name")
    return ascii_name


def display_name(domain: str) -> str:
    """The Unicode form of a normalised domain (what people read)."""
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return domain


def normalise_selector(text: str) -> str:
    selector = (text or "").strip().lower()
    if not _LABEL.match(selector):
        raise BadName(f"selector {text!r}: letters, digits and hyphens, at most 63")
    return selector



# The latest result of each check: per sending domain (kind "domain", check one of
# delivery.dnscheck.CHECKS or "blocklist"), and per blocklist lookup (kind "ip" or "name",
# check the list's zone). `last_known` is the last status that was not "unknown" — what a new
# result is compared with; `alerted` marks a regression that raised an alert and is not fixed.
CHECK_KINDS = ("domain", "ip", "name")
check_results = Table(
    "deliverability_checks", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("subject", String(253), nullable=False),
    Column("check", String(100), nullable=False),
    Column("status", String(8), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("fix", Text, nullable=False, default=""),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("last_known", String(8), nullable=True),
    Column("alerted", Boolean, nullable=False, default=False),
    UniqueConstraint("kind", "subject", "check", name="uq_deliverability_checks_subject"),
)


# What each warm-up (delivery/warmup.py: "domain:NAME" or "ip:ADDRESS") released of held
# campaign rows per day (UTC) and mailbox provider; deliverability/warmup.py keeps it in the
# transaction that queues the rows.
warmup_usage = Table(
    "warmup_usage", metadata,
    Column("warmup", String(300), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("released", Integer, nullable=False),
)
