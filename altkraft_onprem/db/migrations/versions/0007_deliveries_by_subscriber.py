"""Campaign ledger by subscriber: the subscriber timeline lists the campaigns each person received.

Revision ID: 0007_deliveries_by_subscriber
Revises: 0006_split_tests
Create Date: 2026-11-27
"""
from alembic import op

revision = "0007_deliveries_by_subscriber"
down_revision = "0006_split_tests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_campaign_deliveries_subscriber", "campaign_deliveries", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_deliveries_subscriber", table_name="campaign_deliveries")
