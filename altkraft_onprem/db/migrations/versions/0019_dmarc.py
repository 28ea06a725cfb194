"""Inbound mail: DMARC aggregate reports and their rows per day, source IP and result.

Revision ID: 0019_dmarc
Revises: 0018_consent_campaign
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0019_dmarc"
down_revision = "0018_consent_campaign"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dmarc_reports",
        sa.Column("id", ID, primary_key=True),
        sa.Column("inbound_id", ID, sa.ForeignKey("inbound_messages.id", ondelete="SET NULL",
                                                  name="fk_dmarc_reports_inbound_id_inbound_messages"),
                  nullable=True),
        sa.Column("org_name", sa.String(200), nullable=False),
        sa.Column("report_id", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("begin_at", TS, nullable=False),
        sa.Column("end_at", TS, nullable=False),
        sa.UniqueConstraint("org_name", "report_id", name="uq_dmarc_reports_org_name"),
    )
    op.create_table(
        "dmarc_rows",
        sa.Column("id", ID, primary_key=True),
        sa.Column("report_id", ID, sa.ForeignKey("dmarc_reports.id", ondelete="CASCADE",
                                                 name="fk_dmarc_rows_report_id_dmarc_reports"),
                  nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("source_ip", sa.String(45), nullable=False),
        sa.Column("header_from", sa.String(255), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("dkim", sa.String(8), nullable=False),
        sa.Column("spf", sa.String(8), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_dmarc_rows_day", "dmarc_rows", ["day", "source_ip"])
    op.create_index("ix_dmarc_rows_report", "dmarc_rows", ["report_id"])


def downgrade() -> None:
    op.drop_table("dmarc_rows")
    op.drop_table("dmarc_reports")
