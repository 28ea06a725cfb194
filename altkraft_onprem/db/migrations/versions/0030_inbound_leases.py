"""Inbound mail: the pipeline worker that judges a waiting message leases it (holder, until),
so that two workers do not parse the same messages.

Revision ID: 0030_inbound_leases
Revises: 0029_archive
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0030_inbound_leases"
down_revision = "0029_archive"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(120), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
