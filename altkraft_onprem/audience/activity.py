"""Subscriber history: the activity timeline and the consent record."""
from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select

from altkraft_onprem import db, extensions
from altkraft_onprem.db.types import utcnow

from .models import consents, subscriber_activity


def log_activity(conn: Connection, subscriber_id: int, kind: str, **details) -> None:
    conn.execute(insert(subscriber_activity).values(
        subscriber_id=subscriber_id, at=utcnow(), kind=kind,
        details=json.dumps(details, default=str, ensure_ascii=False)))


def log_activities(conn: Connection, kind: str, entries: list[tuple[int, dict]]) -> None:
    """`log_activity` for many people at once: (subscriber id, details) each."""
    if entries:
        at = utcnow()
        text: dict[int, str] = {}       # one JSON per details object (callers share them)
        for _, details in entries:
            if id(details) not in text:
                text[id(details)] = json.dumps(details, default=str, ensure_ascii=False)
        db.insert_many(conn, subscriber_activity, [
            {"subscriber_id": subscriber_id, "at": at, "kind": kind, "details": text[id(details)]}
            for subscriber_id, details in entries])


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


def timeline(conn: Connection, subscriber_id: int, limit: int = 200, offset: int = 0) -> list[dict]:
    """Newest first: own activity, then what higher domains keep of the person
    (extensions.PERSON_TIMELINE: campaigns received, opens and clicks), `limit` entries from
    `offset`. Each source is read newest first up to offset + limit, so a page costs at most
    that many rows per source."""
    wanted = offset + limit
    query = select(subscriber_activity).where(
        subscriber_activity.c.subscriber_id == subscriber_id).order_by(
        subscriber_activity.c.at.desc(), subscriber_activity.c.id.desc()).limit(wanted)
    items = []
    for row in conn.execute(query):
        item = dict(row._mapping)
        item["details"] = json.loads(item["details"] or "{}")
        items.append(item)
    for entries in extensions.PERSON_TIMELINE.collect(conn, subscriber_id, wanted):
        items.extend(entries)
    items.sort(key=lambda i: i["at"], reverse=True)
    return items[offset:wanted]
