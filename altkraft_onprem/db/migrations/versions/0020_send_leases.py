"""One send run per campaign and relay connection limits for the whole installation: the
campaign's run lease (run_owner, run_until) and the relays' connection slots.

Revision ID: 0020_send_leases
Revises: 0019_dmarc
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

TS = sa.DateTime(timezone=True)

revision = "0020_send_leases"
down_revision = "0019_dmarc"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("run_owner", sa.String(120), nullable=True))
    op.add_column("campaigns", sa.Column("run_until", TS, nullable=True))
    op.create_table(
        "relay_slots",
        sa.Column("relay", sa.String(300), nullable=False),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(120), nullable=True),
        sa.Column("until", TS, nullable=True),
        sa.PrimaryKeyConstraint("relay", "slot", name="pk_relay_slots"),
    )


def downgrade() -> None:
    op.drop_table("relay_slots")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("run_until")
        batch.drop_column("run_owner")
