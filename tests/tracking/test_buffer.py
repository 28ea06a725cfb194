"""The event buffer's back-pressure: a full buffer makes request threads wait until a flush
takes the rows (tracking/buffer.py), and the event loop leaves requests to them."""
from __future__ import annotations

import threading

from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.tracking import buffer as buffer_module
from altkraft_onprem.tracking.buffer import EventBuffer
from altkraft_onprem.tracking.models import tracking_events

CAMPAIGN = 95


def _open(subscriber_id: int) -> dict:
    return {"at": utcnow(), "kind": "open", "campaign_id": CAMPAIGN, "subscriber_id": subscriber_id,
            "version_id": 1, "link_index": None, "machine": False, "reason": None, "read_seconds": None,
            "read_class": None, "user_agent": "Mozilla/5.0 (Macintosh)", "ip": "192.0.2.1"}


def test_a_full_buffer_holds_requests_until_a_flush_takes_the_rows(env):
    buffer = EventBuffer()
    buffer.configure(env.settings.replace(tracking__flush_events=2, tracking__flush_interval_ms=3_600_000))
    room = 2 * buffer_module.ROOM_BATCHES
    for subscriber_id in range(room - 1):
        buffer.rows.append(_open(subscriber_id))          # as add() would, without its flush thread
    assert buffer.has_room()
    buffer.rows.append(_open(room))
    assert not buffer.has_room()

    waited = threading.Event()
    waiter = threading.Thread(target=lambda: (buffer.wait_for_room(), waited.set()))
    waiter.start()
    assert not waited.wait(0.3)                           # still held: nothing was written yet
    buffer.engine = env.engine
    assert buffer.flush() == room
    waiter.join(5)
    assert waited.is_set() and buffer.has_room()
    with db.read(env.engine) as conn:
        stored = conn.execute(select(func.count()).select_from(tracking_events)
                              .where(tracking_events.c.campaign_id == CAMPAIGN)).scalar()
    assert stored == room
