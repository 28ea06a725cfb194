"""ledger.record_sent and commit_sent: many sent rows in one statement on the driver's cursor (both databases)."""
from __future__ import annotations

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.service import audience_query
from altkraft_onprem.campaigns import ledger
from altkraft_onprem.campaigns.models import deliveries
from tests.campaigns.helpers import make_campaign, make_list, make_message


def _claimed(env, people: int, name: str):
    list_id, _ = make_list(env, name, [{"email": f"{name}{i}@example.net"} for i in range(people)])
    campaign_id = make_campaign(env, make_message(env), [list_id])
    with db.write(env.engine) as conn:
        ledger.materialise(conn, campaign_id, audience_query(conn, [list_id], [], [], []))
        rows = ledger.claim(conn, campaign_id, "me:1:x", people, 300)
    return campaign_id, rows


def test_sent_rows_are_recorded_with_reply_and_message_id(env):
    campaign_id, rows = _claimed(env, 3, "sent")
    items = [(row_id, "me:1:x", "250 2.0.0 OK", f"<m{row_id}@example.com>") for row_id, _ in rows]
    with db.write(env.engine) as conn:
        assert ledger.record_sent(conn, items) == [True, True, True]
    with db.read(env.engine) as conn:
        found = conn.execute(select(deliveries).where(deliveries.c.campaign_id == campaign_id)
                             .order_by(deliveries.c.id)).mappings().all()
    assert [r["state"] for r in found] == ["sent"] * 3
    assert [r["message_id"] for r in found] == [m for *_, m in items]
    assert all(r["reply"] == "250 2.0.0 OK" and r["attempts"] == 1 for r in found)
    assert all(r["done_at"] is not None and r["done_at"] == r["first_attempt_at"] for r in found)
    assert all(r["lease_owner"] is None for r in found)


def test_a_row_whose_lease_was_lost_is_reported(env):
    campaign_id, rows = _claimed(env, 3, "lost")
    with db.write(env.engine) as conn:                  # someone else took the second row over
        conn.execute(deliveries.update().where(deliveries.c.id == rows[1][0])
                     .values(lease_owner="other:2:y"))
        oks = ledger.record_sent(conn, [(row_id, "me:1:x", "250 OK", "<m@example.com>")
                                        for row_id, _ in rows])
    assert oks == [True, False, True]
    with db.read(env.engine) as conn:
        states = conn.execute(select(deliveries.c.state).where(deliveries.c.campaign_id == campaign_id)
                              .order_by(deliveries.c.id)).scalars().all()
    assert states == ["sent", "leased", "sent"]


def test_commit_sent_runs_its_own_transaction_on_the_driver(env):
    campaign_id, rows = _claimed(env, 4, "own")
    with env.engine.connect() as conn:                  # the sender parent's held connection
        conn.execute(deliveries.update().where(deliveries.c.id == rows[2][0])
                     .values(lease_owner="other:2:y"))
        conn.commit()
        oks = ledger.commit_sent(conn, [(row_id, "me:1:x", "250 OK", f"<m{row_id}@example.com>")
                                        for row_id, _ in rows[:3]])
        assert oks == [True, True, False]
        # The connection is usable through SQLAlchemy again afterwards.
        assert ledger.commit_sent(conn, [(rows[3][0], "me:1:x", "250 OK", "<last@example.com>")]) == [True]
        with conn.begin():
            assert ledger.counts(conn, campaign_id)["sent"] == 3
    with db.read(env.engine) as conn:
        states = conn.execute(select(deliveries.c.state).where(deliveries.c.campaign_id == campaign_id)
                              .order_by(deliveries.c.id)).scalars().all()
    assert states == ["sent", "sent", "leased", "sent"]
