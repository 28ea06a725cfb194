"""Warm-up: why a held ledger row waits (campaign_deliveries.hold: NULL for a split test's
winner, "warmup" for a warm-up's quota) and what each warm-up released per day and mailbox
provider (warmup_usage).

Revision ID: 0031_warmup
Revises: 0030_inbound_leases
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0031_warmup"
down_revision = "0030_inbound_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaign_deliveries", sa.Column("hold", sa.String(8), nullable=True))
    op.create_table(
        "warmup_usage",
        sa.Column("warmup", sa.String(300), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("released", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("warmup", "day", "provider", name="pk_warmup_usage"),
    )


def downgrade() -> None:
    op.drop_table("warmup_usage")
    with op.batch_alter_table("campaign_deliveries") as batch:
        batch.drop_column("hold")
