"""Imports: a heartbeat, so that an import whose worker died is noticed and marked failed.

Revision ID: 0008_import_heartbeat
Revises: 0007_deliveries_by_subscriber
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_import_heartbeat"
down_revision = "0007_deliveries_by_subscriber"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: a plain ADD COLUMN on both databases (no table rewrite).
    op.add_column("imports", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("heartbeat_at")
