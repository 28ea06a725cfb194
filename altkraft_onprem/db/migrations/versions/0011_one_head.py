"""Joins the two lines of this release (audience/imports and messages/tracking) into one head,
so that `altkraft db status` names a single revision and the next migration has one parent.

Revision ID: 0011_one_head
Revises: 0008_import_heartbeat, 0010_clickmap_index
Create Date: 2026-11-27
"""
revision = "0011_one_head"
down_revision = ("0008_import_heartbeat", "0010_clickmap_index")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
