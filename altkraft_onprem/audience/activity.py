"""Subscriber history: the activity timeline and the consent record."""
from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select

from altkraft_onprem.db.types import utcnow

from .models import consents, subscriber_activity


def log_activity(conn: Connection, subscriber_id: int, kind: str, **details) -> None:
    conn.execute(insert(subscriber_activity).values(
        subscriber_id=subscriber_id, at=utcnow(), kind=kind,
        details=json.dumps(details, default=str, ensure_ascii=False)))


def record_consent(conn: Connection, subscriber_id: int, list_id: int | None, kind: str, *,
                   ip: str = "", user_agent: str = "", form: str = "",
                   campaign_id: int | None = None) -> None:
    conn.execute(insert(consents).values(
        subscriber_id=subscriber_id, list_id=list_id, kind=kind, at=utcnow(), ip=(ip or "")[:64],
        user_agent=(user_agent or "")[:300], form=(form or "")[:200], campaign_id=campaign_id))


def consent_record(conn: Connection, subscriber_id: int) -> list[dict]:
    query = select(consents).where(consents.c.subscriber_id == subscriber_id).order_by(
        consents.c.at.desc(), consents.c.id.desc())
    return [dict(r._mapping) for r in conn.execute(query)]


PAGE_SIZE = 50
# Ledger rows that reached a subscriber's mailbox or tried to: the rest (queued, held,
# skipped, cancelled) never left and are not part of their history.
RECEIVED_STATES = {"sent": "campaign_sent", "failed": "campaign_failed", "in_doubt": "campaign_in_doubt"}


def timeline(conn: Connection, subscriber_id: int, limit: int = 200, offset: int = 0) -> list[dict]:
    """Newest first: own activity, campaigns received (the delivery ledger) and tracking
    events (opens, clicks), `limit` entries from `offset`. Each source is read newest first
    up to offset + limit, so a page costs at most that many rows per source."""
    wanted = offset + limit
    query = select(subscriber_activity).where(
        subscriber_activity.c.subscriber_id == subscriber_id).order_by(
        subscriber_activity.c.at.desc(), subscriber_activity.c.id.desc()).limit(wanted)
    items = []
    for row in conn.execute(query):
        item = dict(row._mapping)
        item["details"] = json.loads(item["details"] or "{}")
        items.append(item)
    items.extend(_campaigns_received(conn, subscriber_id, wanted))
    items.extend(_tracking_events(conn, subscriber_id, wanted))
    items.sort(key=lambda i: i["at"], reverse=True)
    return items[offset:wanted]


def _campaigns_received(conn: Connection, subscriber_id: int, limit: int) -> list[dict]:
    try:
        from altkraft_onprem.campaigns.models import campaigns, deliveries
    except ImportError:
        return []
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


def _tracking_events(conn: Connection, subscriber_id: int, limit: int) -> list[dict]:
    try:
        from altkraft_onprem.tracking.models import tracking_events
    except ImportError:
        return []
    query = select(tracking_events.c.at, tracking_events.c.kind, tracking_events.c.campaign_id,
                   tracking_events.c.link_index, tracking_events.c.machine,
                   tracking_events.c.reason).where(
        tracking_events.c.subscriber_id == subscriber_id).order_by(
        tracking_events.c.at.desc()).limit(limit)
    names = {"open": "opened", "click": "clicked", "read": "read"}
    return [{"at": r.at, "kind": names.get(r.kind, r.kind),
             "details": {"campaign_id": r.campaign_id, "link_index": r.link_index,
                         "machine": r.reason if r.machine else None}}
            for r in conn.execute(query)]
