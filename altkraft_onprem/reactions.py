"""Which domain reacts to which domain event: the one place handlers are connected.

A composition root like app.py: it may import any domain. `create_app` calls `connect_all()`,
and every process that runs services (web workers, job consumers, the CLI, tests) builds the
app first, so every process has the same reactions. Connecting twice is harmless.
"""
from __future__ import annotations

from altkraft_onprem import events
from altkraft_onprem.inbound import service as inbound
from altkraft_onprem.tracking import erasure


def connect_all() -> None:
    # A person's tracking events and per-person roll-ups go with the person.
    events.SUBSCRIBERS_ERASED.connect(_erase_tracking)
    # A relay's synchronous 5xx is a bounce like one that comes back by mail.
    events.EMAIL_REJECTED.connect(inbound.relay_rejected)


def _erase_tracking(conn, *, subscriber_ids) -> None:
    erasure.erase_people(conn, subscriber_ids)
