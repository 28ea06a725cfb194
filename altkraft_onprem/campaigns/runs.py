"""The send run lease: one run per campaign at a time, across processes and hosts.

Every job consumer that starts queues its own restart check, and each check queued a send
run: two runs of one campaign started within milliseconds and each forked its senders, so a
relay saw twice its connections. A run now takes the campaign's lease (`take`) before it
sends; a second run finds it held and ends at once. The lease is kept alive by the run's
activity — every claim and lease extension of its senders, every pass of the run, and a
sender waiting for a relay connection (`extend`) — and it is free again when the run ends
(`release`), when its holder on this host is gone, or `delivery.lease_seconds` after the last
sign of life of a holder on another host (like the ledger's row leases).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.holders import lease_free

from .models import campaigns


def take(conn: Connection, campaign_id: int, owner: str, seconds: float,
         now: datetime | None = None) -> bool:
    """Whether `owner` now holds the campaign's run lease (False: another run holds it)."""
    now = now or utcnow()
    row = conn.execute(select(campaigns.c.run_owner, campaigns.c.run_until).where(
        campaigns.c.id == campaign_id)).first()
    if row is None:
        return False
    if row.run_owner != owner and not lease_free(row.run_owner, row.run_until, now):
        return False
    # Only if nobody took it since we looked (two runs deciding at once: one wins).
    seen = campaigns.c.run_owner.is_(None) if row.run_owner is None else campaigns.c.run_owner == row.run_owner
    return conn.execute(update(campaigns).where(campaigns.c.id == campaign_id, seen).values(
        run_owner=owner, run_until=now + timedelta(seconds=seconds))).rowcount == 1


def extend(conn: Connection, campaign_id: int, seconds: float) -> None:
    """A sign of life of the run that holds the lease (its senders call this)."""
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id,
                                         campaigns.c.run_owner.is_not(None))
                 .values(run_until=utcnow() + timedelta(seconds=seconds)))


def release(conn: Connection, campaign_id: int, owner: str) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id,
                                         campaigns.c.run_owner == owner)
                 .values(run_owner=None, run_until=None))


def held(conn: Connection, campaign_id: int, now: datetime | None = None) -> bool:
    """Whether a run holds the campaign now."""
    row = conn.execute(select(campaigns.c.run_owner, campaigns.c.run_until).where(
        campaigns.c.id == campaign_id)).first()
    return row is not None and not lease_free(row.run_owner, row.run_until, now or utcnow())
