"""The public archive: a list's archive_slug (its page /archive/SLUG) and a campaign's
archive flag (published there once finished).

Revision ID: 0029_archive
Revises: 0028_local_time
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0029_archive"
down_revision = "0028_local_time"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lists") as batch:
        batch.add_column(sa.Column("archive_slug", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_lists_archive_slug", ["archive_slug"])
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("archive", sa.Boolean, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("archive")
    with op.batch_alter_table("lists") as batch:
        batch.drop_constraint("uq_lists_archive_slug", type_="unique")
        batch.drop_column("archive_slug")
