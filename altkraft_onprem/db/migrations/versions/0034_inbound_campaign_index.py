"""Inbound: an index on inbound_messages (campaign_id, outcome, subscriber_id), so the circuit
breaker's check for a campaign's deferrals (inbound/monitor.py) looks up its recipients
instead of scanning every inbound message inside the transaction that applies a bounce.

Revision ID: 0034_inbound_campaign_index
Revises: 0033_workflow_bulk
Create Date: 2026-12-08
"""
from alembic import op

revision = "0034_inbound_campaign_index"
down_revision = "0033_workflow_bulk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbound_messages_campaign", "inbound_messages",
                    ["campaign_id", "outcome", "subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_campaign", table_name="inbound_messages")
