"""Tracking: the campaign roll-up (counts, hours, people, uniques by domain, first-open agents).

Filled from the events already stored (once, here); from then on every event flush keeps it.

Revision ID: 0009_campaign_rollup
Revises: 0007_messages_archive
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_campaign_rollup"
down_revision = "0007_messages_archive"
branch_labels = None
depends_on = None


def _key() -> list[sa.Column]:
    return [sa.Column("campaign_id", sa.Integer, primary_key=True),
            sa.Column("variant", sa.Integer, primary_key=True)]


def upgrade() -> None:
    op.create_table("campaign_counts", *_key(),
                    sa.Column("kind", sa.String(8), primary_key=True),
                    sa.Column("machine", sa.Boolean, primary_key=True),
                    sa.Column("read_class", sa.String(16), primary_key=True),
                    sa.Column("events", sa.Integer, nullable=False),
                    sa.Column("read_seconds", sa.Float, nullable=False))
    op.create_table("campaign_hours", *_key(),
                    sa.Column("hour", sa.String(16), primary_key=True),
                    sa.Column("kind", sa.String(8), primary_key=True),
                    sa.Column("machine", sa.Boolean, primary_key=True),
                    sa.Column("events", sa.Integer, nullable=False))
    op.create_table("campaign_people",
                    sa.Column("campaign_id", sa.Integer, primary_key=True),
                    sa.Column("subscriber_id", sa.Integer, primary_key=True),
                    sa.Column("metric", sa.String(8), primary_key=True))
    op.create_table("campaign_uniques", *_key(),
                    sa.Column("domain", sa.String(255), primary_key=True),
                    sa.Column("metric", sa.String(8), primary_key=True),
                    sa.Column("people", sa.Integer, nullable=False))
    op.create_table("campaign_agents", *_key(),
                    sa.Column("user_agent", sa.String(300), primary_key=True),
                    sa.Column("people", sa.Integer, nullable=False))
    from altkraft_onprem.tracking import campaign_rollup

    campaign_rollup.rebuild(op.get_bind())


def downgrade() -> None:
    for name in ("campaign_agents", "campaign_uniques", "campaign_people", "campaign_hours", "campaign_counts"):
        op.drop_table(name)
