"""Deliverability: sending domains made in the app, their DKIM keys, settings made in the UI.

Revision ID: 0021_deliverability
Revises: 0020_send_leases
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0021_deliverability"
down_revision = "0020_send_leases"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sending_domains",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("bounce_domain", sa.String(253), nullable=False),
        sa.Column("tracking_host", sa.String(253), nullable=False),
        sa.Column("warmup", sa.Boolean, nullable=False),
        sa.Column("warmup_started_on", sa.String(10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("domain", name="uq_sending_domains_domain"),
    )
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("domain_id", sa.Integer,
                  sa.ForeignKey("sending_domains.id", ondelete="CASCADE",
                                name="fk_dkim_keys_domain_id_sending_domains"), nullable=False),
        sa.Column("selector", sa.String(63), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("key_file", sa.Text, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("retiring_since", TS, nullable=True),
        sa.UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_selector"),
    )
    op.create_table(
        "settings_overrides",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.JSON, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings_overrides")
    op.drop_table("dkim_keys")
    op.drop_table("sending_domains")
