"""Tracking: a covering index for the clickmap (per campaign, version and link) and for the
list of versions a campaign's events name; both read the index alone.

Revision ID: 0010_clickmap_index
Revises: 0009_campaign_rollup
Create Date: 2026-11-27
"""
from alembic import op

revision = "0010_clickmap_index"
down_revision = "0009_campaign_rollup"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tracking_events_version", "tracking_events",
                    ["campaign_id", "version_id", "kind", "link_index", "machine", "subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_tracking_events_version", table_name="tracking_events")
