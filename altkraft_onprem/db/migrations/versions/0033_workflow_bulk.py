"""Workflows: bulk enrollments of a whole segment, done a chunk per transaction in the
background (each chunk records how far it got).

Revision ID: 0033_workflow_bulk
Revises: 0032_provider_breakers
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0033_workflow_bulk"
down_revision = "0032_provider_breakers"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_bulk_enrollments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow_id", sa.Integer, sa.ForeignKey(
            "workflows.id", name="fk_workflow_bulk_enrollments_workflow_id_workflows",
            ondelete="CASCADE"), nullable=False),
        sa.Column("segment_id", sa.Integer, nullable=False),
        sa.Column("request", sa.String(32), nullable=False),
        sa.Column("test", sa.Boolean, nullable=False),
        sa.Column("requested_by", sa.String(320), nullable=False),
        sa.Column("asked", sa.Integer, nullable=False),
        sa.Column("after_id", sa.Integer, nullable=False),
        sa.Column("entered", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.UniqueConstraint("request", name="uq_workflow_bulk_enrollments_request"),
    )
    op.create_index("ix_workflow_bulk_enrollments_finished_at", "workflow_bulk_enrollments",
                    ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_workflow_bulk_enrollments_finished_at", "workflow_bulk_enrollments")
    op.drop_table("workflow_bulk_enrollments")
