"""Audience tables: lists, subscribers, custom fields, segments, suppressions, trash.

The field rules (normalise_email, clean_standard, clean_custom, the vocabulary) live in
rules.py; they are re-exported here because callers across the appliance import them from
this module.
"""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime

from .rules import (  # noqa: F401 - re-exported
    CUSTOM_KEY_RE,
    CUSTOM_TEXT_MAX,
    FIELD_TYPES,
    GENDERS,
    MEMBER_STATUSES,
    STANDARD_FIELDS,
    STANDARD_TYPES,
    SUBSCRIBER_STATES,
    TEXT_MAX,
    FieldError,
    check_custom_key,
    clean_custom,
    clean_standard,
    countries,
    custom_index_name,
    email_domain,
    normalise_domain,
    normalise_email,
    parse_date,
    parse_datetime,
)

# --- tables -----------------------------------------------------------------------------------

JSONType = JSON().with_variant(JSONB(), "postgresql")

custom_fields = Table(
    "custom_fields", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(63), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("choices", Text, nullable=False, default="[]"),      # JSON list
    Column("created_at", UTCDateTime(), nullable=False),
)

lists = Table(
    "lists", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("visibility", String(16), nullable=False, default="private"),
    Column("optin", String(16), nullable=False, default="single"),
    Column("tags", Text, nullable=False, default="[]"),          # JSON list
    # Hosted form and confirmation email settings (JSON object, see audience/forms.py).
    Column("form", Text, nullable=False, default="{}"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # Where the list's public archive is (/archive/SLUG); none: the list has no archive.
    Column("archive_slug", String(64), nullable=True, unique=True),
)

deletion_batches = Table(
    "deletion_batches", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("actor", String(320), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("count", Integer, nullable=False, default=0),
)

subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("email_domain", String(255), nullable=False, index=True),
    Column("state", String(16), nullable=False, default="active"),
    Column("first_name", String(TEXT_MAX), nullable=True),
    Column("last_name", String(TEXT_MAX), nullable=True),
    Column("phone", String(32), nullable=True),
    Column("gender", String(16), nullable=True),
    Column("birth_date", Date, nullable=True),
    Column("company", String(TEXT_MAX), nullable=True),
    Column("city", String(TEXT_MAX), nullable=True),
    Column("region", String(TEXT_MAX), nullable=True),
    Column("country", String(2), nullable=True, index=True),
    Column("language", String(35), nullable=True),
    Column("timezone", String(64), nullable=True),
    Column("custom", JSONType, nullable=False, default=dict),
    Column("source", String(100), nullable=False, default=""),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("deleted_at", UTCDateTime(), nullable=True),
    Column("deleted_batch", Integer, ForeignKey("deletion_batches.id", ondelete="SET NULL"),
           nullable=True, index=True),
)

subscriber_lists = Table(
    "subscriber_lists", metadata,
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("confirmed_at", UTCDateTime(), nullable=True),
    Column("unsubscribed_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("list_id", "subscriber_id", name="pk_subscriber_lists"),
    Index("ix_subscriber_lists_subscriber_id", "subscriber_id"),
    Index("ix_subscriber_lists_list_id_status", "list_id", "status"),
)

suppressions = Table(
    "suppressions", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=True, unique=True),
    Column("domain", String(255), nullable=True, unique=True),
    Column("reason", String(200), nullable=False, default=""),
    Column("source", String(50), nullable=False, default="manual"),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(320), nullable=False, default=""),
)

consents = Table(
    "consents", metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="SET NULL"), nullable=True),
    Column("kind", String(32), nullable=False),    # subscribe, confirm, unsubscribe, import, manual
    Column("at", UTCDateTime(), nullable=False),
    Column("ip", String(64), nullable=False, default=""),
    Column("user_agent", String(300), nullable=False, default=""),
    Column("form", String(200), nullable=False, default=""),   # how: "one-click", "mailto", …
    # The campaign whose link or address the person used (no foreign key: campaigns are a
    # later layer, and the record outlives the campaign).
    Column("campaign_id", Integer, nullable=True, index=True),
    Index("ix_consents_ip_at", "ip", "at"),
)

subscriber_activity = Table(
    "subscriber_activity", metadata,
    Column("id", Integer, primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("details", Text, nullable=False, default="{}"),    # JSON
)

segments = Table(
    "segments", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("conditions", Text, nullable=False),                # JSON, see audience/segments.py
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("created_by", String(320), nullable=False, default=""),
)
