"""0018 gives the unsubscribes recorded before it their campaign, so that the reports of
campaigns already sent count them (issue 15 item 3)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from altkraft_onprem import db
from altkraft_onprem.audience.models import consents, subscriber_activity, subscribers
from altkraft_onprem.db import migrate
from tests.cli_helpers import empty_database

AT = datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)
# subscriber id -> (consent form, the activity's campaign or None, seconds between the two)
BEFORE = {1: ("campaign 12", None, 0), 2: ("one-click", 7, 0), 3: ("unsubscribe page", 8, 1),
          4: ("mailto", 9, 0), 5: ("preference center", None, 0), 6: ("one-click", 5, 3600)}


def test_old_unsubscribes_get_their_campaign(tmp_path):
    with empty_database(tmp_path) as url:
        engine = db.build_engine(url)
        try:
            migrate.upgrade(engine, "0017_workflows")
            with db.write(engine) as conn:
                for sid, (form, campaign_id, apart) in BEFORE.items():
                    conn.execute(insert(subscribers).values(
                        id=sid, email=f"p{sid}@m.example", email_domain="m.example", state="active",
                        custom={}, source="", created_at=AT, updated_at=AT))
                    conn.execute(insert(consents).values(subscriber_id=sid, list_id=None, kind="unsubscribe",
                                                         at=AT, form=form))
                    conn.execute(insert(subscriber_activity).values(
                        subscriber_id=sid, kind="unsubscribed", at=AT + timedelta(seconds=apart),
                        details=json.dumps({"list_id": None, "campaign_id": campaign_id, "lists": []})))
            migrate.upgrade(engine)
            with db.read(engine) as conn:
                found = dict(conn.execute(select(consents.c.subscriber_id, consents.c.campaign_id)).all())
            assert found == {1: 12, 2: 7, 3: 8, 4: 9, 5: None, 6: None}
        finally:
            engine.dispose()
