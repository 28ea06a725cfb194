"""Campaigns: a circuit breaker per mailbox provider (sending to it paused while open).

Revision ID: 0032_provider_breakers
Revises: 0031_warmup
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0032_provider_breakers"
down_revision = "0031_warmup"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_breakers",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("figures", sa.JSON, nullable=True),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.String(320), nullable=True),
        sa.PrimaryKeyConstraint("provider", name="pk_provider_breakers"),
    )


def downgrade() -> None:
    op.drop_table("provider_breakers")
