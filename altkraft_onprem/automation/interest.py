"""Which domain events anything listens to: the outbox records only those.

Computed from the active webhook subscriptions and the active workflows' triggers, kept for
a few seconds per process (every emitting transaction asks), and dropped at once in the
process that changes a subscription or a workflow. Another process sees the change within
CACHE_SECONDS: an event in that window may go unrecorded for a listener that was just
created — never one for a listener that existed before.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, select

from .models import webhooks

CACHE_SECONDS = 2.0

# Webhook event types carried by a domain event of another name (one outbox row, many parts).
WEBHOOK_SOURCE = {
    "delivery.sent": "delivery.outcomes", "delivery.failed": "delivery.outcomes",
    "delivery.in_doubt": "delivery.outcomes",
    "email.opened": "email.tracked", "email.read": "email.tracked", "email.clicked": "email.tracked",
}

_lock = threading.Lock()
_cached: dict[str, tuple[float, frozenset[str]]] = {}        # per database URL
# Other listeners (workflows) add the events their active triggers need.
_sources: list[Callable[[Connection], set[str]]] = []


def source_event(webhook_type: str) -> str:
    """The domain event a webhook event type comes from."""
    return WEBHOOK_SOURCE.get(webhook_type, webhook_type)


def add_source(source: Callable[[Connection], set[str]]) -> None:
    if source not in _sources:
        _sources.append(source)


def _webhook_events(conn: Connection) -> set[str]:
    names: set[str] = set()
    for types in conn.execute(select(webhooks.c.event_types).where(webhooks.c.active.is_(True))).scalars():
        names.update(source_event(t) for t in types or ())
    return names


def wanted(conn: Connection) -> frozenset[str]:
    database = str(conn.engine.url)
    at, names = _cached.get(database, (float("-inf"), frozenset()))
    if time.monotonic() - at < CACHE_SECONDS:
        return names
    found = _webhook_events(conn)
    for source in _sources:
        found |= source(conn)
    names = frozenset(found)
    with _lock:
        _cached[database] = (time.monotonic(), names)
    return names


def wants(conn: Connection, name: str) -> bool:
    return name in wanted(conn)


def probe(name: str) -> Callable[[Connection | None], bool]:
    """The outbox handler's `wants` (events.DomainEvent.wanted): with a connection, the
    answer; without one, the cached answer when there is one, else yes."""
    def wants_it(conn: Connection | None) -> bool:
        if conn is not None:
            return wants(conn, name)
        fresh = [names for at, names in list(_cached.values())
                 if time.monotonic() - at < CACHE_SECONDS]
        return len(fresh) != 1 or name in fresh[0]
    return wants_it


def invalidate() -> None:
    """A listener changed in this process: ask the database again next time."""
    with _lock:
        _cached.clear()
