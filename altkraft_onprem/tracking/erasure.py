"""A person's tracking data goes with the person (GDPR erasure, the trash purge).

Their events (times, IP addresses, user agents, links clicked) and the roll-up rows keyed by
them are deleted; the roll-ups' counts stay as they are (they name nobody), so campaign
reports keep their totals. Left on purpose: the campaign ledger (ids only; it is what proves
nobody was sent a campaign twice) and campaign_people (which campaigns an id was already
counted for; no index leads with the person, and it names nobody once the person is gone).
SQLite may hand a deleted highest id to the next new subscriber, which is one more reason
nothing keyed by the id may stay behind in what is shown per person.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete

from .models import engagement_activity, engagement_seen, tracking_events

CHUNK = 500


def erase_people(conn: Connection, subscriber_ids: Iterable[int]) -> None:
    ids = sorted(set(subscriber_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for table in (tracking_events, engagement_seen, engagement_activity):
            conn.execute(delete(table).where(table.c.subscriber_id.in_(chunk)))
