"""Messages: archiving (a message no campaign uses leaves the list, its versions are kept).

Revision ID: 0007_messages_archive
Revises: 0006_split_tests
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_messages_archive"
down_revision = "0006_split_tests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: a plain ADD COLUMN on both databases (no table rewrite).
    op.add_column("messages", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("archived_at")
