"""Inbound mail: the intake of raw messages, bounces and complaints; the ledger by Message-ID
(the last way to attribute a bounce or complaint to a message we sent).

Revision ID: 0013_inbound
Revises: 0012_cohort_activity
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision = "0013_inbound"
down_revision = "0012_cohort_activity"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("rcpt", sa.String(320), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("subscriber_id", sa.Integer, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("processed_at", TS, nullable=True),
        sa.UniqueConstraint("digest", name="uq_inbound_messages_digest"),
    )
    op.create_index("ix_inbound_messages_state", "inbound_messages", ["state", "id"])
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.create_table(
        "bounces",
        sa.Column("id", ID, primary_key=True),
        sa.Column("inbound_id", ID, sa.ForeignKey(
            "inbound_messages.id", ondelete="SET NULL",
            name="fk_bounces_inbound_id_inbound_messages"), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=True),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("bounce_class", sa.String(12), nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("rules_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("diagnostic", sa.Text, nullable=False),
        sa.Column("remote_mta", sa.String(255), nullable=False),
        sa.Column("suppressed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_bounces_campaign", "bounces", ["campaign_id", "bounce_class"])
    op.create_index("ix_bounces_subscriber", "bounces", ["subscriber_id", "at"])
    op.create_index("ix_bounces_at", "bounces", ["at"])
    op.create_table(
        "complaints",
        sa.Column("id", ID, primary_key=True),
        sa.Column("inbound_id", ID, sa.ForeignKey(
            "inbound_messages.id", ondelete="SET NULL",
            name="fk_complaints_inbound_id_inbound_messages"), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=True),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("feedback_type", sa.String(16), nullable=False),
        sa.Column("reporter", sa.String(200), nullable=False),
    )
    op.create_index("ix_complaints_campaign", "complaints", ["campaign_id"])
    op.create_index("ix_complaints_subscriber", "complaints", ["subscriber_id"])
    op.create_index("ix_complaints_at", "complaints", ["at"])
    op.create_index("ix_campaign_deliveries_message_id", "campaign_deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_deliveries_message_id", table_name="campaign_deliveries")
    op.drop_table("complaints")
    op.drop_table("bounces")
    op.drop_table("inbound_messages")
