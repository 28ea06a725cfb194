"""What campaigns answers when a lower domain asks (extensions.py; registered in reactions.py):
the campaigns a person was sent, for their timeline, and the campaigns that use a message."""
from __future__ import annotations

from sqlalchemy import Connection, select

from .models import campaigns, deliveries, split_tests

# Ledger rows that reached a subscriber's mailbox or tried to: the rest (queued, held,
# skipped, cancelled) never left and are not part of their history.
RECEIVED_STATES = {"sent": "campaign_sent", "failed": "campaign_failed", "in_doubt": "campaign_in_doubt"}


def received_timeline(conn: Connection, subscriber_id: int, limit: int) -> list[dict]:
    """extensions.PERSON_TIMELINE: the campaigns sent (or tried) to a person, newest first."""
    query = (select(deliveries.c.campaign_id, deliveries.c.state, deliveries.c.done_at,
                    deliveries.c.reply, campaigns.c.name)
             .join(campaigns, campaigns.c.id == deliveries.c.campaign_id)
             .where(deliveries.c.subscriber_id == subscriber_id,
                    deliveries.c.state.in_(list(RECEIVED_STATES)), deliveries.c.done_at.is_not(None))
             .order_by(deliveries.c.done_at.desc()).limit(limit))
    return [{"at": r.done_at, "kind": RECEIVED_STATES[r.state],
             "details": {"campaign_id": r.campaign_id, "campaign": r.name,
                         "reply": (r.reply or "")[:200] if r.state != "sent" else None}}
            for r in conn.execute(query)]


def message_users(conn: Connection, message_id: int) -> dict[int, str]:
    """extensions.MESSAGE_USERS: campaigns that send this message, as the campaign's message
    or a split-test variant's."""
    found = {row.id: row.name for row in conn.execute(
        select(campaigns.c.id, campaigns.c.name).where(campaigns.c.message_id == message_id))}
    for row in conn.execute(select(split_tests.c.campaign_id, split_tests.c.variants,
                                   campaigns.c.name).join(campaigns, campaigns.c.id == split_tests.c.campaign_id)):
        if any(isinstance(v, dict) and v.get("message_id") == message_id for v in row.variants or []):
            found[row.campaign_id] = row.name
    return found
