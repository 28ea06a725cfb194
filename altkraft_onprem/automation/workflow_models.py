"""Workflow tables: workflows, their immutable published versions, enrollments and steps.

Exactly once rests on three keys: an enrollment's `entry_key` (UNIQUE: the event, manual
request or parent step that caused it — a replayed event cannot enroll twice), its
`active_key` (UNIQUE while it runs, NULL after: at most one active enrollment per person per
workflow), and a step's (enrollment, node, visit) (UNIQUE, written in the transaction that
applies the node's effects and moves the enrollment on).
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

WORKFLOW_STATES = ("draft", "active", "paused", "archived")
ENROLLMENT_STATES = ("active", "done", "exited", "parked")
STATE_LABELS = (N_("draft"), N_("active"), N_("paused"), N_("archived"), N_("done"),
                N_("exited"), N_("parked"))

workflows = Table(
    "workflows", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("state", String(12), nullable=False, default="draft"),
    Column("draft", JSON, nullable=False),                  # the workflow JSON being edited
    Column("version_id", Integer, nullable=True),           # the published version new people get
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Signs the requests of its HTTP nodes (Standard Webhooks); the previous one signs too
    # until the next rotation.
    Column("signing_secret", String(100), nullable=True),
    Column("previous_signing_secret", String(100), nullable=True),
)

workflow_versions = Table(
    "workflow_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow_id", Integer, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("definition", JSON, nullable=False),             # never changed once written
    # send_email node id -> the campaign whose ledger its messages go through
    Column("campaigns", JSON, nullable=False),
    Column("published_at", UTCDateTime, nullable=False),
    Column("published_by", String(320), nullable=False),
    UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_workflow_id"),
)

enrollments = Table(
    "workflow_enrollments", metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow_id", Integer, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("subscriber_id", Integer, nullable=False),
    Column("entry_key", String(200), nullable=False),
    Column("active_key", String(64), nullable=True),
    Column("state", String(12), nullable=False, default="active"),
    Column("node_id", String(64), nullable=True),           # where the person is
    Column("visit", Integer, nullable=False, default=1),    # of that node
    Column("wake_at", UTCDateTime, nullable=True),          # when the runner looks next
    Column("waiting_until", UTCDateTime, nullable=True),    # set while a wait node waits
    Column("waiting_for", String(100), nullable=True),      # an event name (wait_for_event)
    Column("event_seen", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),  # tries of the current node (HTTP)
    Column("lease_owner", String(120), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("event", JSON, nullable=False),                  # what made them enter: {{ event.… }}
    Column("test", Boolean, nullable=False, default=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("end_reason", Text, nullable=True),
    UniqueConstraint("entry_key", name="uq_workflow_enrollments_entry_key"),
    UniqueConstraint("active_key", name="uq_workflow_enrollments_active_key"),
)
Index("ix_workflow_enrollments_due", enrollments.c.state, enrollments.c.wake_at)
Index("ix_workflow_enrollments_person", enrollments.c.subscriber_id, enrollments.c.workflow_id)
Index("ix_workflow_enrollments_workflow", enrollments.c.workflow_id, enrollments.c.state,
      enrollments.c.node_id)

steps = Table(
    "workflow_steps", metadata,
    Column("id", Integer, primary_key=True),
    Column("enrollment_id", Integer, ForeignKey("workflow_enrollments.id", ondelete="CASCADE"),
           nullable=False),
    Column("workflow_id", Integer, nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("visit", Integer, nullable=False),
    Column("branch", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    UniqueConstraint("enrollment_id", "node_id", "visit", name="uq_workflow_steps_enrollment_id"),
)
Index("ix_workflow_steps_workflow", steps.c.workflow_id, steps.c.node_id)

# How far each time-driven trigger (date_field, schedule, not_opened, not_clicked) has looked:
# the next tick takes what falls after `checked_until`; set to the activation time when a
# workflow becomes active, so nothing from before it fires.
trigger_marks = Table(
    "workflow_trigger_marks", metadata,
    Column("workflow_id", Integer, ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True),
    Column("checked_until", UTCDateTime, nullable=False),
)

# Segments watched by segment_entered / segment_left triggers, and who was in each at the last
# check: the next check's difference is who entered and who left.
segment_watch = Table(
    "workflow_segment_watch", metadata,
    Column("segment_id", Integer, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True),
    Column("baselined_at", UTCDateTime, nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
)
segment_members = Table(
    "workflow_segment_members", metadata,
    Column("segment_id", Integer, ForeignKey("workflow_segment_watch.segment_id", ondelete="CASCADE"),
           primary_key=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True),
)
Index("ix_workflow_segment_members_subscriber_id", segment_members.c.subscriber_id)

# A split node's automatic winner: the first `test_size` people go by weight (`tested` counts
# them); `wait` after the last of them the winner is chosen on their emails' human figures
# (the campaigns' split-test rules), and everyone after goes by the winning branch.
splits = Table(
    "workflow_splits", metadata,
    Column("version_id", Integer, ForeignKey("workflow_versions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("node_id", String(64), primary_key=True),
    Column("tested", Integer, nullable=False, default=0),
    Column("decide_at", UTCDateTime, nullable=True),
    Column("winner", String(64), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("results", JSON, nullable=True),
)


# A whole segment enrolled by hand (UI, API, CLI): a chunk of people per transaction in the
# background, each recording how far it got (`after_id`), so a crash resumes where it stopped
# and entry keys (bulk:REQUEST:SUBSCRIBER) keep a replayed chunk from enrolling anyone twice.
bulk_enrollments = Table(
    "workflow_bulk_enrollments", metadata,
    Column("id", Integer, primary_key=True),
    Column("workflow_id", Integer, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False),
    Column("segment_id", Integer, nullable=False),
    Column("request", String(32), nullable=False),
    Column("test", Boolean, nullable=False),
    Column("requested_by", String(320), nullable=False),
    Column("asked", Integer, nullable=False),             # the segment's size when asked
    Column("after_id", Integer, nullable=False),          # the last subscriber id taken
    Column("entered", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("request", name="uq_workflow_bulk_enrollments_request"),
)
Index("ix_workflow_bulk_enrollments_finished_at", bulk_enrollments.c.finished_at)
