"""One person's data: export everything stored (access request) and erase it (erasure)."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Connection, delete, select

from altkraft_onprem import events
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record

from .activity import consent_record, timeline
from .models import subscribers, suppressions
from .subscribers import get_subscriber


def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def export_person(conn: Connection, subscriber_id: int) -> dict:
    person = get_subscriber(conn, subscriber_id, include_deleted=True)
    entries = conn.execute(select(suppressions).where(suppressions.c.email == person["email"]))
    return _plain({
        "profile": {k: v for k, v in person.items() if k != "lists"},
        "lists": person["lists"],
        "consents": consent_record(conn, subscriber_id),
        "activity": timeline(conn, subscriber_id, limit=100_000),
        "suppression": [dict(r._mapping) for r in entries],
    })


def erase_person(conn: Connection, actor: Actor, subscriber_id: int) -> None:
    """Deletes the person with memberships, consents, activity and tracking data. A suppression entry for the
    address stays (keeping someone who objected from being mailed again is a legal duty); the
    audit entry names only the id."""
    get_subscriber(conn, subscriber_id, include_deleted=True)
    events.SUBSCRIBERS_ERASED.emit(conn, subscriber_ids=[subscriber_id])
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
    record(conn, actor, "subscriber.erase", "subscriber", subscriber_id)
