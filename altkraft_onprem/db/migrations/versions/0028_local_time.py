"""Local-time delivery: a campaign's send_at_local ({time, fallback_timezone, quiet_hours})
and the zones of its ledger, each ledger row's zone (an index into them).

Revision ID: 0028_local_time
Revises: 0027_list_scope
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0028_local_time"
down_revision = "0027_list_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("send_at_local", sa.JSON, nullable=True))
    op.add_column("campaigns", sa.Column("local_zones", sa.JSON, nullable=True))
    op.add_column("campaign_deliveries", sa.Column("zone", sa.SmallInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_deliveries") as batch:
        batch.drop_column("zone")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("local_zones")
        batch.drop_column("send_at_local")
