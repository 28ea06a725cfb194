"""Imports: import runs and their rejected rows.

Revision ID: 0002b_imports
Revises: 0002_audience
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0002b_imports"
down_revision = "0002_audience"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("filename", sa.String(300), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("list_ids", sa.Text, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("mapping", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("rows_done", sa.Integer, nullable=False),
        sa.Column("rows_total", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_table(
        "import_rejects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("import_id", sa.Integer, sa.ForeignKey("imports.id", ondelete="CASCADE",
                  name="fk_import_rejects_import_id_imports"), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("member", sa.String(300), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
    )
    op.create_index("ix_import_rejects_import_id", "import_rejects", ["import_id"])


def downgrade() -> None:
    op.drop_index("ix_import_rejects_import_id", table_name="import_rejects")
    op.drop_table("import_rejects")
    op.drop_table("imports")
