"""Messages: messages, message versions, saved templates (with the shipped starters), media.

Revision ID: 0003_messages
Revises: 0001_foundation
Create Date: 2026-11-26
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003_messages"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
    )
    op.create_table(
        "message_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer, sa.ForeignKey(
            "messages.id", ondelete="CASCADE", name="fk_message_versions_message_id_messages"),
            nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_follows_html", sa.Boolean, nullable=False),
        sa.Column("editor", sa.String(10), nullable=False),
        sa.Column("editor_state", sa.Text, nullable=True),
        sa.Column("data_source", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.UniqueConstraint("message_id", "version", name="uq_message_versions_message_id"),
    )
    templates = op.create_table(
        "templates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("preheader", sa.Text, nullable=False),
        sa.Column("html", sa.Text, nullable=False),
        sa.Column("editor_state", sa.Text, nullable=True),
        sa.Column("builtin", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.UniqueConstraint("name", name="uq_templates_name"),
    )
    op.create_table(
        "media",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("stored_name", sa.String(80), nullable=False),
        sa.Column("content_type", sa.String(50), nullable=False),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.UniqueConstraint("stored_name", name="uq_media_stored_name"),
    )
    op.create_index("ix_media_sha256", "media", ["sha256"])

    # The starting layouts that ship with the product (kept in the package as HTML files).
    from altkraft_onprem.messages.starters import STARTERS

    now = datetime.now(UTC)
    op.bulk_insert(templates, [
        {"name": s.name, "description": s.description, "subject": s.subject,
         "preheader": s.preheader, "html": s.html(), "editor_state": None, "builtin": True,
         "created_at": now, "updated_at": now, "created_by": "system"}
        for s in STARTERS])


def downgrade() -> None:
    op.drop_index("ix_media_sha256", table_name="media")
    for table in ("media", "templates", "message_versions", "messages"):
        op.drop_table(table)
