"""Custom events posted by integrators (POST /api/v1/events): remembered by idempotency key,
recorded in the outbox for the workflows that wait for or start on them."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from altkraft_onprem import db
from altkraft_onprem.audience.subscribers import find_by_email, get_subscriber
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from . import outbox
from .models import received_events
from .triggers import CUSTOM_EVENT


def receive(conn: Connection, *, name: str, subscriber_id: int | None = None,
            email: str | None = None, properties: dict[str, Any] | None = None,
            occurred_at: datetime | None = None, idempotency_key: str | None = None,
            wake=None) -> dict[str, Any]:
    """Records one event; the same idempotency key again returns the first one
    ({"id", "duplicate": True}) and changes nothing."""
    if (subscriber_id is None) == (email is None):
        raise ServiceError("give either email or subscriber_id", "email")
    if idempotency_key is not None:
        found = conn.execute(select(received_events.c.id).where(
            received_events.c.idempotency_key == idempotency_key)).scalar()
        if found is not None:
            return {"id": found, "duplicate": True}
    try:
        person = get_subscriber(conn, subscriber_id) if subscriber_id is not None else find_by_email(conn, email)
    except NotFound:
        person = None
    if person is None:
        raise NotFound("no such subscriber", "subscriber_id" if subscriber_id is not None else "email")
    now = utcnow()
    result = conn.execute(db.insert_ignoring_conflicts(conn, received_events, ["idempotency_key"]).values(
        idempotency_key=idempotency_key, subscriber_id=person["id"], name=name,
        properties=properties or {}, occurred_at=occurred_at or now, received_at=now)
        .returning(received_events.c.id)).scalar()
    if result is None:          # the same key, committed by a concurrent request
        return {"id": conn.execute(select(received_events.c.id).where(
            received_events.c.idempotency_key == idempotency_key)).scalar_one(), "duplicate": True}
    outbox.append(conn, CUSTOM_EVENT, {"event_id": result, "subscriber_id": person["id"],
                                       "name": name, "properties": properties or {}},
                  wake=wake, occurred_at=occurred_at)
    return {"id": result, "duplicate": False}
