"""The transactional API: its ledger (transactional_sends, UNIQUE idempotency key) and the
campaigns that carry its messages (campaigns.transactional).

Revision ID: 0026_transactional
Revises: 0025_two_factor
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0026_transactional"
down_revision = "0025_two_factor"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("transactional", sa.Boolean, nullable=False,
                                   server_default="0"))
    op.create_table(
        "transactional_sends",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey(
            "campaigns.id", name="fk_transactional_sends_campaign_id_campaigns",
            ondelete="CASCADE"), nullable=False),
        sa.Column("message_id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("strict", sa.Boolean, nullable=False),
        sa.Column("token_id", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_transactional_sends_idempotency_key"),
    )
    op.create_index("ix_transactional_sends_created", "transactional_sends", ["created_at"])
    op.create_index("ix_transactional_sends_category", "transactional_sends",
                    ["category", "created_at"])
    op.create_index("ix_transactional_sends_subscriber", "transactional_sends", ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("transactional_sends")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("transactional")
