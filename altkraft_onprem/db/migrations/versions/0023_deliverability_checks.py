"""Deliverability: the latest result of each DNS and blocklist check; alerts name their subject.

Revision ID: 0023_deliverability_checks
Revises: 0022_workflow_triggers
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0023_deliverability_checks"
down_revision = "0022_workflow_triggers"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deliverability_checks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(253), nullable=False),
        sa.Column("check", sa.String(100), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("fix", sa.Text, nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.Column("last_known", sa.String(8), nullable=True),
        sa.Column("alerted", sa.Boolean, nullable=False),
        sa.UniqueConstraint("kind", "subject", "check", name="uq_deliverability_checks_subject"),
    )
    with op.batch_alter_table("deliverability_alerts") as batch:
        batch.add_column(sa.Column("subject", sa.String(255), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("deliverability_alerts") as batch:
        batch.drop_column("subject")
    op.drop_table("deliverability_checks")
