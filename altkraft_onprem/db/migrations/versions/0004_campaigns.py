"""Campaigns and the delivery ledger.

Revision ID: 0004_campaigns
Revises: 0002_audience, 0003_messages
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_campaigns"
down_revision = ("0002_audience", "0003_messages")
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message_id", sa.Integer, sa.ForeignKey(
            "messages.id", name="fk_campaigns_message_id_messages"), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=True),
        sa.Column("from_email", sa.String(320), nullable=False),
        sa.Column("from_name", sa.String(200), nullable=False),
        sa.Column("reply_to", sa.String(320), nullable=True),
        sa.Column("list_ids", sa.JSON, nullable=False),
        sa.Column("segment_ids", sa.JSON, nullable=False),
        sa.Column("exclude_list_ids", sa.JSON, nullable=False),
        sa.Column("exclude_segment_ids", sa.JSON, nullable=False),
        sa.Column("utm", sa.JSON, nullable=False),
        sa.Column("link_utm", sa.JSON, nullable=False),
        sa.Column("track_opens", sa.Boolean, nullable=False),
        sa.Column("track_clicks", sa.Boolean, nullable=False),
        sa.Column("schedule_at", TS, nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("pause_reason", sa.Text, nullable=True),
        sa.Column("ledger_built", sa.Boolean, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_campaigns_state_schedule", "campaigns", ["state", "schedule_at"])
    op.create_table(
        "campaign_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey(
            "campaigns.id", ondelete="CASCADE", name="fk_campaign_deliveries_campaign_id_campaigns"),
            nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("lease_owner", sa.String(120), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_attempt_at", TS, nullable=True),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("message_id", sa.String(200), nullable=True),
        sa.Column("reply", sa.Text, nullable=True),
        sa.Column("done_at", TS, nullable=True),
        sa.UniqueConstraint("campaign_id", "subscriber_id",
                            name="uq_campaign_deliveries_campaign_subscriber"),
    )
    op.create_index("ix_campaign_deliveries_claim", "campaign_deliveries",
                    ["campaign_id", "state", "id"])
    op.create_index("ix_campaign_deliveries_owner", "campaign_deliveries", ["lease_owner"])


def downgrade() -> None:
    op.drop_table("campaign_deliveries")
    op.drop_table("campaigns")
