"""Workflow triggers that the minute tick evaluates: how far each time-driven trigger has
looked (a date field, a schedule, "not opened within"), and the membership snapshot of the
segments that segment_entered / segment_left triggers watch.

Revision ID: 0022_workflow_triggers
Revises: 0021_deliverability
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0022_workflow_triggers"
down_revision = "0021_deliverability"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_trigger_marks",
        sa.Column("workflow_id", sa.Integer, sa.ForeignKey(
            "workflows.id", name="fk_workflow_trigger_marks_workflow_id_workflows",
            ondelete="CASCADE"), primary_key=True),
        sa.Column("checked_until", TS, nullable=False),
    )
    op.create_table(
        "workflow_segment_watch",
        sa.Column("segment_id", sa.Integer, sa.ForeignKey(
            "segments.id", name="fk_workflow_segment_watch_segment_id_segments",
            ondelete="CASCADE"), primary_key=True),
        sa.Column("baselined_at", TS, nullable=False),
        sa.Column("checked_at", TS, nullable=False),
    )
    op.create_table(
        "workflow_segment_members",
        sa.Column("segment_id", sa.Integer, sa.ForeignKey(
            "workflow_segment_watch.segment_id",
            name="fk_workflow_segment_members_segment_id_workflow_segment_watch",
            ondelete="CASCADE"), primary_key=True),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey(
            "subscribers.id", name="fk_workflow_segment_members_subscriber_id_subscribers",
            ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_workflow_segment_members_subscriber_id", "workflow_segment_members",
                    ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_workflow_segment_members_subscriber_id", "workflow_segment_members")
    op.drop_table("workflow_segment_members")
    op.drop_table("workflow_segment_watch")
    op.drop_table("workflow_trigger_marks")
