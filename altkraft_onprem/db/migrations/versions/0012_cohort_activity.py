"""Tracking: engagement_activity, each person's active periods after joining as bits (what the
cohort report filtered by a list reads), filled from the periods already counted.

Revision ID: 0012_cohort_activity
Revises: 0011_one_head
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_cohort_activity"
down_revision = "0011_one_head"
branch_labels = None
depends_on = None

# The state of engagement_seen and subscribers at this revision, and the rule of
# tracking/rollup.rebuild at this revision (frozen here: later code may change).
FILL = {
    "sqlite": {
        "month": "strftime('%Y-%m-01', s.created_at)",
        "week": "date(s.created_at, 'weekday 0', '-6 days')",
        "offset_month": "(CAST(substr(seen.bucket, 1, 4) AS INTEGER) * 12 + CAST(substr(seen.bucket, 6, 2) AS INTEGER))"
                        " - (CAST(substr({c}, 1, 4) AS INTEGER) * 12 + CAST(substr({c}, 6, 2) AS INTEGER))",
        "offset_week": "CAST(julianday(seen.bucket) - julianday({c}) AS INTEGER) / 7",
    },
    "postgresql": {
        "month": "to_char(date_trunc('month', timezone('UTC', s.created_at)), 'YYYY-MM-DD')",
        "week": "to_char(date_trunc('week', timezone('UTC', s.created_at)), 'YYYY-MM-DD')",
        "offset_month": "(CAST(substr(seen.bucket, 1, 4) AS INTEGER) * 12 + CAST(substr(seen.bucket, 6, 2) AS INTEGER))"
                        " - (CAST(substr({c}, 1, 4) AS INTEGER) * 12 + CAST(substr({c}, 6, 2) AS INTEGER))",
        "offset_week": "(CAST(seen.bucket AS DATE) - CAST({c} AS DATE)) / 7",
    },
}


def upgrade() -> None:
    op.create_table(
        "engagement_activity",
        sa.Column("subscriber_id", sa.Integer, primary_key=True),
        sa.Column("period", sa.String(8), primary_key=True),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("active", sa.BigInteger, nullable=False),
    )
    parts = FILL[op.get_bind().dialect.name]
    for period in ("week", "month"):
        offset = parts[f"offset_{period}"].format(c=parts[period])
        op.execute(sa.text(
            "INSERT INTO engagement_activity (subscriber_id, period, metric, active) "
            f"SELECT seen.subscriber_id, '{period}', seen.metric, CAST(SUM(CAST(1 AS BIGINT) << ({offset})) AS BIGINT) "
            "FROM engagement_seen seen JOIN subscribers s ON s.id = seen.subscriber_id "
            f"WHERE seen.period = '{period}' AND ({offset}) BETWEEN 0 AND 62 "
            "GROUP BY seen.subscriber_id, seen.metric"))


def downgrade() -> None:
    op.drop_table("engagement_activity")
