"""List-scoped roles: the lists a role is limited to (JSON list of ids; NULL: every list).

Revision ID: 0027_list_scope
Revises: 0026_transactional
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0027_list_scope"
down_revision = "0026_transactional"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("roles") as batch:
        batch.add_column(sa.Column("list_scope", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("roles") as batch:
        batch.drop_column("list_scope")
