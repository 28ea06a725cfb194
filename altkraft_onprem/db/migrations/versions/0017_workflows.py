"""Workflows: workflows, immutable versions, enrollments, steps; the delivery ledger's unique
key gains an occurrence (a workflow's send node may send to one person once per occurrence),
and a ledger row may carry its triggering event.

Revision ID: 0017_workflows
Revises: 0016_deliverability_alerts
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0017_workflows"
down_revision = "0016_deliverability_alerts"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("draft", sa.JSON, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "workflow_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow_id", sa.Integer, sa.ForeignKey(
            "workflows.id", name="fk_workflow_versions_workflow_id_workflows", ondelete="CASCADE"),
            nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("campaigns", sa.JSON, nullable=False),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("published_by", sa.String(320), nullable=False),
        sa.UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_workflow_id"),
    )
    op.create_table(
        "workflow_enrollments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow_id", sa.Integer, sa.ForeignKey(
            "workflows.id", name="fk_workflow_enrollments_workflow_id_workflows", ondelete="CASCADE"),
            nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("entry_key", sa.String(200), nullable=False),
        sa.Column("active_key", sa.String(64), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("visit", sa.Integer, nullable=False),
        sa.Column("wake_at", TS, nullable=True),
        sa.Column("waiting_until", TS, nullable=True),
        sa.Column("waiting_for", sa.String(100), nullable=True),
        sa.Column("event_seen", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(120), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("test", sa.Boolean, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("end_reason", sa.Text, nullable=True),
        sa.UniqueConstraint("entry_key", name="uq_workflow_enrollments_entry_key"),
        sa.UniqueConstraint("active_key", name="uq_workflow_enrollments_active_key"),
    )
    op.create_index("ix_workflow_enrollments_due", "workflow_enrollments", ["state", "wake_at"])
    op.create_index("ix_workflow_enrollments_person", "workflow_enrollments",
                    ["subscriber_id", "workflow_id"])
    op.create_index("ix_workflow_enrollments_workflow", "workflow_enrollments",
                    ["workflow_id", "state", "node_id"])
    op.create_table(
        "workflow_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("enrollment_id", sa.Integer, sa.ForeignKey(
            "workflow_enrollments.id", name="fk_workflow_steps_enrollment_id_workflow_enrollments",
            ondelete="CASCADE"), nullable=False),
        sa.Column("workflow_id", sa.Integer, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("visit", sa.Integer, nullable=False),
        sa.Column("branch", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.UniqueConstraint("enrollment_id", "node_id", "visit", name="uq_workflow_steps_enrollment_id"),
    )
    op.create_index("ix_workflow_steps_workflow", "workflow_steps", ["workflow_id", "node_id"])
    op.add_column("campaigns", sa.Column("workflow_id", sa.Integer, nullable=True))
    # SQLite cannot drop a table constraint: batch mode copies the ledger into a new table.
    with op.batch_alter_table("campaign_deliveries") as batch:
        batch.add_column(sa.Column("occurrence", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("context", sa.JSON, nullable=True))
        batch.drop_constraint("uq_campaign_deliveries_campaign_subscriber", type_="unique")
        batch.create_unique_constraint("uq_campaign_deliveries_occurrence",
                                       ["campaign_id", "subscriber_id", "occurrence"])


def downgrade() -> None:
    with op.batch_alter_table("campaign_deliveries") as batch:
        batch.drop_constraint("uq_campaign_deliveries_occurrence", type_="unique")
        batch.create_unique_constraint("uq_campaign_deliveries_campaign_subscriber",
                                       ["campaign_id", "subscriber_id"])
        batch.drop_column("context")
        batch.drop_column("occurrence")
    op.drop_column("campaigns", "workflow_id")
    for name in ("workflow_steps", "workflow_enrollments", "workflow_versions", "workflows"):
        op.drop_table(name)
