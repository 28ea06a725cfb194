"""Import undo: what an import changed in people who existed (import_changes), whether it
recorded that (imports.undoable: earlier imports did not), and when and how it was undone.

Revision ID: 0035_import_undo
Revises: 0034_inbound_campaign_index
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0035_import_undo"
down_revision = "0034_inbound_campaign_index"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("imports") as batch:
        batch.add_column(sa.Column("undoable", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("undone_at", TS, nullable=True))
        batch.add_column(sa.Column("undo_result", sa.Text, nullable=True))
    op.create_table(
        "import_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("import_id", sa.Integer, sa.ForeignKey(
            "imports.id", name="fk_import_changes_import_id_imports", ondelete="CASCADE"),
            nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey(
            "subscribers.id", name="fk_import_changes_subscriber_id_subscribers", ondelete="CASCADE"),
            nullable=False),
        sa.Column("list_id", sa.Integer, nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("changes", sa.Text, nullable=True),
    )
    op.create_index("ix_import_changes_import_id_kind", "import_changes", ["import_id", "kind"])
    op.create_index("ix_import_changes_subscriber_id", "import_changes", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_import_changes_subscriber_id", "import_changes")
    op.drop_index("ix_import_changes_import_id_kind", "import_changes")
    op.drop_table("import_changes")
    with op.batch_alter_table("imports") as batch:
        batch.drop_column("undo_result")
        batch.drop_column("undone_at")
        batch.drop_column("undoable")
