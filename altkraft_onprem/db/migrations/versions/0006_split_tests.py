"""Split tests: a campaign's variants, test portion, metric and winner; the ledger's test group.

Revision ID: 0006_split_tests
Revises: 0002b_imports, 0004_campaigns, 0005_tracking
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_split_tests"
# Every head at the time: this revision joins the branches again.
down_revision = ("0002b_imports", "0004_campaigns", "0005_tracking")
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign_split_tests",
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey(
            "campaigns.id", ondelete="CASCADE", name="fk_campaign_split_tests_campaign_id_campaigns"),
            primary_key=True),
        sa.Column("variants", sa.JSON, nullable=False),
        sa.Column("test_percent", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("wait_hours", sa.Float, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("decide_at", TS, nullable=True),
        sa.Column("winner", sa.Integer, nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decided_by", sa.String(320), nullable=True),
        sa.Column("results", sa.JSON, nullable=True),
    )
    # A constant default: no table rewrite on Postgres, a plain ADD COLUMN on SQLite.
    op.add_column("campaign_deliveries", sa.Column("test_group", sa.Boolean, nullable=False,
                                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("campaign_deliveries") as batch:
        batch.drop_column("test_group")
    op.drop_table("campaign_split_tests")
