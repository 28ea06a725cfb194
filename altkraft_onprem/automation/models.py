"""Automation tables: the domain-event outbox and outgoing webhooks (workflows: workflow_models.py).

The outbox is written by a handler of the domain events (altkraft_onprem/events.py) in the
transaction of the change; the dispatcher turns each row into webhook deliveries and workflow
enrollments under UNIQUE keys, so a row dispatched twice (a crash between the fan-out's
commit and nothing else) changes nothing the second time.
"""
from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime
from altkraft_onprem.i18n import N_

outbox = Table(
    "automation_outbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("type", String(64), nullable=False),            # the domain event's name
    Column("payload", JSON, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("dispatched_at", UTCDateTime, nullable=True),
    Column("error", Text, nullable=True),                   # why its fan-out failed, if it did
)
# The dispatcher's claim: rows not dispatched yet, oldest first.
Index("ix_automation_outbox_pending", outbox.c.dispatched_at, outbox.c.id)

# Webhook event types (the contract's dotted names), with the label the UI shows.
WEBHOOK_EVENT_TYPES = {
    "subscriber.created": N_("A subscriber was added"),
    "subscriber.updated": N_("A subscriber's fields changed"),
    "subscriber.deleted": N_("Subscribers were moved to the trash"),
    "subscriber.restored": N_("Subscribers were restored from the trash"),
    "subscriber.erased": N_("Subscribers were erased (GDPR)"),
    "subscription.confirmed": N_("A subscription was confirmed"),
    "subscription.unsubscribed": N_("A subscriber unsubscribed"),
    "import.finished": N_("An import finished"),
    "campaign.started": N_("A campaign started"),
    "campaign.paused": N_("A campaign was paused"),
    "campaign.finished": N_("A campaign finished"),
    "delivery.sent": N_("A message was accepted by the relay"),
    "delivery.failed": N_("A message failed"),
    "delivery.in_doubt": N_("A message is in doubt"),
    "email.opened": N_("An email was opened"),
    "email.read": N_("An email was read"),
    "email.clicked": N_("A link was clicked"),
    "email.bounced": N_("An email bounced"),
    "email.complained": N_("A recipient complained"),
    "suppression.added": N_("An address was suppressed"),
    "suppression.removed": N_("A suppression was lifted"),
    "deliverability.regressed": N_("A DNS or blocklist check got worse"),
    "workflow.entered": N_("A subscriber entered a workflow"),
    "workflow.exited": N_("A subscriber left a workflow"),
    "workflow.goal": N_("A subscriber reached a workflow goal"),
}

webhooks = Table(
    "webhook_subscriptions", metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_types", JSON, nullable=False),            # [webhook event type]
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), nullable=True),
    Column("secret", String(100), nullable=False),          # whsec_…
    Column("previous_secret", String(100), nullable=True),  # still signed with during rotation
    Column("active", Boolean, nullable=False, default=True),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("disabled_reason", Text, nullable=True),
    Column("description", String(200), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

DELIVERY_STATES = ("pending", "leased", "delivered", "failed")
DELIVERY_STATE_LABELS = (N_("pending"), N_("leased"), N_("delivered"), N_("failed"))

webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("webhook_id", Integer, ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
           nullable=False),
    # (outbox row, part): one outbox row may carry several events (a tracking flush).
    Column("outbox_id", Integer, nullable=False),
    Column("part", Integer, nullable=False, default=0),
    Column("event_id", String(64), nullable=False),         # webhook-id: the same on every try
    Column("type", String(64), nullable=False),
    Column("body", Text, nullable=False),                   # the envelope exactly as signed
    Column("state", String(12), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_status", Integer, nullable=True),          # HTTP status of the last try
    Column("last_error", Text, nullable=True),
    Column("response_excerpt", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    UniqueConstraint("webhook_id", "outbox_id", "part", name="uq_webhook_deliveries_event"),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_webhook", webhook_deliveries.c.webhook_id, webhook_deliveries.c.id)

# Custom events posted to /api/v1/events, remembered by idempotency key (the same key twice
# is one event).
received_events = Table(
    "automation_received_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(200), nullable=True, unique=True),
    Column("subscriber_id", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("properties", JSON, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
Index("ix_automation_received_events_subscriber", received_events.c.subscriber_id,
      received_events.c.name, received_events.c.occurred_at)
