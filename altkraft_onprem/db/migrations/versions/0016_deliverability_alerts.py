"""Inbound mail: deliverability alerts (complaint rate per campaign and provider, policy and
content blocks).

Revision ID: 0016_deliverability_alerts
Revises: 0015_campaign_feedback
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0016_deliverability_alerts"
down_revision = "0015_campaign_feedback"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deliverability_alerts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.String(12), nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_deliverability_alerts_last_at", "deliverability_alerts", ["last_at"])


def downgrade() -> None:
    op.drop_table("deliverability_alerts")
