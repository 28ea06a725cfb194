"""Audience: the campaign an unsubscribe came through, on its consent record (the campaign
report counts these), filled in for the unsubscribes recorded before.

Until now the campaign was only in `form` ("campaign 12") for unsubscribes without a channel
name, while the one-click POST, the unsubscribe page and mailto wrote their channel there and
the campaign only into the subscriber's activity (JSON details, at the same moment).

Revision ID: 0018_consent_campaign
Revises: 0017_workflows
Create Date: 2026-12-07
"""
import json
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0018_consent_campaign"
down_revision = "0017_workflows"
branch_labels = None
depends_on = None

CHANNELS = ("one-click", "unsubscribe page", "mailto")
# The consent and the activity of one unsubscribe are written in one transaction.
SAME_MOMENT = timedelta(seconds=5)

consents = sa.table("consents", sa.column("id", sa.Integer), sa.column("subscriber_id", sa.Integer),
                    sa.column("kind", sa.String), sa.column("form", sa.String),
                    sa.column("at", sa.DateTime(timezone=True)), sa.column("campaign_id", sa.Integer))
activity = sa.table("subscriber_activity", sa.column("subscriber_id", sa.Integer),
                    sa.column("kind", sa.String), sa.column("details", sa.Text),
                    sa.column("at", sa.DateTime(timezone=True)))


def upgrade() -> None:
    # Nullable, no default: a plain ADD COLUMN on both databases (no table rewrite).
    op.add_column("consents", sa.Column("campaign_id", sa.Integer, nullable=True))
    op.create_index("ix_consents_campaign_id", "consents", ["campaign_id"])
    bind = op.get_bind()
    unsubscribes = consents.c.kind == "unsubscribe"
    bind.execute(consents.update().where(unsubscribes, consents.c.form.like("campaign %")).values(
        campaign_id=sa.cast(sa.func.substr(consents.c.form, len("campaign ") + 1), sa.Integer)))
    _fill_channels_from_activity(bind)


def _fill_channels_from_activity(bind) -> None:
    rows = bind.execute(sa.select(consents.c.id, consents.c.subscriber_id, consents.c.at).where(
        consents.c.kind == "unsubscribe", consents.c.form.in_(CHANNELS),
        consents.c.campaign_id.is_(None))).all()
    for row in rows:
        found = bind.execute(sa.select(activity.c.details).where(
            activity.c.subscriber_id == row.subscriber_id, activity.c.kind == "unsubscribed",
            activity.c.at >= row.at - SAME_MOMENT, activity.c.at <= row.at + SAME_MOMENT)).scalars()
        campaigns = {json.loads(details or "{}").get("campaign_id") for details in found}
        campaigns.discard(None)
        if len(campaigns) == 1:
            bind.execute(consents.update().where(consents.c.id == row.id)
                         .values(campaign_id=campaigns.pop()))


def downgrade() -> None:
    op.drop_index("ix_consents_campaign_id", "consents")
    with op.batch_alter_table("consents") as batch:
        batch.drop_column("campaign_id")
