"""Audience: custom fields, lists, subscribers, memberships, suppressions, trash batches,
consents, activity, saved segments.

Revision ID: 0002_audience
Revises: 0001_foundation
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_audience"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "custom_fields",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("choices", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("key", name="uq_custom_fields_key"),
    )
    op.create_table(
        "lists",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("optin", sa.String(16), nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("form", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("name", name="uq_lists_name"),
    )
    op.create_table(
        "deletion_batches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index("ix_deletion_batches_at", "deletion_batches", ["at"])
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_domain", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("first_name", sa.String(200), nullable=True),
        sa.Column("last_name", sa.String(200), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("gender", sa.String(16), nullable=True),
        sa.Column("birth_date", sa.Date, nullable=True),
        sa.Column("company", sa.String(200), nullable=True),
        sa.Column("city", sa.String(200), nullable=True),
        sa.Column("region", sa.String(200), nullable=True),
        sa.Column("country", sa.String(2), nullable=True),
        sa.Column("language", sa.String(35), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("custom", JSON_TYPE, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.Column("deleted_batch", sa.Integer,
                  sa.ForeignKey("deletion_batches.id", ondelete="SET NULL",
                                name="fk_subscribers_deleted_batch_deletion_batches"),
                  nullable=True),
        sa.UniqueConstraint("email", name="uq_subscribers_email"),
    )
    op.create_index("ix_subscribers_email_domain", "subscribers", ["email_domain"])
    op.create_index("ix_subscribers_deleted_batch", "subscribers", ["deleted_batch"])
    op.create_index("ix_subscribers_country", "subscribers", ["country"])
    op.create_table(
        "subscriber_lists",
        sa.Column("list_id", sa.Integer,
                  sa.ForeignKey("lists.id", ondelete="CASCADE",
                                name="fk_subscriber_lists_list_id_lists"), nullable=False),
        sa.Column("subscriber_id", sa.Integer,
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE",
                                name="fk_subscriber_lists_subscriber_id_subscribers"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.Column("unsubscribed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("list_id", "subscriber_id", name="pk_subscriber_lists"),
    )
    op.create_index("ix_subscriber_lists_subscriber_id", "subscriber_lists", ["subscriber_id"])
    op.create_index("ix_subscriber_lists_list_id_status", "subscriber_lists",
                    ["list_id", "status"])
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("domain", sa.String(255), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.UniqueConstraint("email", name="uq_suppressions_email"),
        sa.UniqueConstraint("domain", name="uq_suppressions_domain"),
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer,
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE",
                                name="fk_consents_subscriber_id_subscribers"), nullable=False),
        sa.Column("list_id", sa.Integer,
                  sa.ForeignKey("lists.id", ondelete="SET NULL",
                                name="fk_consents_list_id_lists"), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.Column("form", sa.String(200), nullable=False),
    )
    op.create_index("ix_consents_subscriber_id", "consents", ["subscriber_id"])
    op.create_index("ix_consents_ip_at", "consents", ["ip", "at"])
    op.create_table(
        "subscriber_activity",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subscriber_id", sa.Integer,
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE",
                                name="fk_subscriber_activity_subscriber_id_subscribers"),
                  nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_subscriber_activity_subscriber_id", "subscriber_activity",
                    ["subscriber_id"])
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("conditions", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.UniqueConstraint("name", name="uq_segments_name"),
    )


def downgrade() -> None:
    for table in ("segments", "subscriber_activity", "consents", "suppressions",
                  "subscriber_lists", "subscribers", "deletion_batches", "lists",
                  "custom_fields"):
        op.drop_table(table)
