"""Tracking: open, reading-time and click events.

Revision ID: 0005_tracking
Revises: 0001_foundation
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_tracking"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tracking_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("link_index", sa.Integer, nullable=True),
        sa.Column("machine", sa.Boolean, nullable=False),
        sa.Column("reason", sa.String(16), nullable=True),
        sa.Column("read_seconds", sa.Float, nullable=True),
        sa.Column("read_class", sa.String(16), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
    )
    # covering indexes: the reports read these columns only (see tracking/models.py)
    op.create_index("ix_tracking_events_campaign", "tracking_events",
                    ["campaign_id", "kind", "machine", "subscriber_id", "at"])
    op.create_index("ix_tracking_events_subscriber", "tracking_events",
                    ["subscriber_id", "kind", "machine", "at"])

    op.create_table(
        "engagement_seen",
        sa.Column("subscriber_id", sa.Integer, primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.String(16), primary_key=True),
    )
    op.create_table(
        "engagement_cohorts",
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("cohort", sa.String(16), primary_key=True),
        sa.Column("bucket", sa.String(16), primary_key=True),
        sa.Column("source", sa.String(100), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("engagement_cohorts")
    op.drop_table("engagement_seen")
    op.drop_table("tracking_events")
