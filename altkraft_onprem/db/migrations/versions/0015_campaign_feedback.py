"""Reports: bounces and complaints per campaign, variant and mailbox provider (a roll-up kept
by the inbound mail reactions).

Revision ID: 0015_campaign_feedback
Revises: 0014_automation
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0015_campaign_feedback"
down_revision = "0014_automation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_feedback",
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("bounce_class", sa.String(12), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "variant", "provider", "kind", "bounce_class",
                                name="pk_campaign_feedback"),
    )


def downgrade() -> None:
    op.drop_table("campaign_feedback")
