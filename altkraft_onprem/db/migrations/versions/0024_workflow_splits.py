"""Workflows: the automatic winner of a split node (its test group's size, when it decides,
the winning branch and the figures it was chosen on), and each workflow's signing secret for
its HTTP request nodes (the previous one still signs while it rotates).

Revision ID: 0024_workflow_splits
Revises: 0023_deliverability_checks
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0024_workflow_splits"
down_revision = "0023_deliverability_checks"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workflow_splits",
        sa.Column("version_id", sa.Integer, sa.ForeignKey(
            "workflow_versions.id", name="fk_workflow_splits_version_id_workflow_versions",
            ondelete="CASCADE"), primary_key=True),
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("tested", sa.Integer, nullable=False),
        sa.Column("decide_at", TS, nullable=True),
        sa.Column("winner", sa.String(64), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("results", sa.JSON, nullable=True),
    )
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("signing_secret", sa.String(100), nullable=True))
        batch.add_column(sa.Column("previous_signing_secret", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("previous_signing_secret")
        batch.drop_column("signing_secret")
    op.drop_table("workflow_splits")
