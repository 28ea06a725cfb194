"""Two-factor sign-in: each user's TOTP secret (encrypted with a key derived from the app's
secret key), the secret being enrolled, the last time step accepted (a code works once), the
recovery codes (SHA-256 only), and the roles whose users must use it.

Revision ID: 0025_two_factor
Revises: 0024_workflow_splits
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0025_two_factor"
down_revision = "0024_workflow_splits"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_secret", sa.String(300), nullable=True))
        batch.add_column(sa.Column("totp_pending", sa.String(300), nullable=True))
        batch.add_column(sa.Column("totp_enabled_at", TS, nullable=True))
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger, nullable=True))
    with op.batch_alter_table("roles") as batch:
        batch.add_column(sa.Column("require_two_factor", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey(
            "users.id", name="fk_recovery_codes_user_id_users", ondelete="CASCADE"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.UniqueConstraint("code_hash", name="uq_recovery_codes_code_hash"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_codes_user_id", "recovery_codes")
    op.drop_table("recovery_codes")
    with op.batch_alter_table("roles") as batch:
        batch.drop_column("require_two_factor")
    with op.batch_alter_table("users") as batch:
        for column in ("totp_last_step", "totp_enabled_at", "totp_pending", "totp_secret"):
            batch.drop_column(column)
