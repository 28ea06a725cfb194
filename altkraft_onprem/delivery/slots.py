"""Relay connection slots in the database, so that a relay's max_connections holds for the
whole installation: every process and host that sends a campaign takes one of the relay's
slots before it opens a session and gives it back when the session ends.

Without them each process counted only its own sessions: two send runs of one campaign (or
two campaigns) opened twice the relay's connections. A slot is leased like a ledger row:
its holder extends it while it sends (`extend`, in the transaction of each claim), and a slot
whose holder died on this host, or whose lease ran out, is free for the next one.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.holders import lease_free

from .models import relay_slots


class RelaySlots:
    """The slots one holder (a sender process) takes, leased for `lease_seconds`."""

    def __init__(self, engine: Engine, owner: str, lease_seconds: float):
        self.engine, self.owner, self.lease_seconds = engine, owner, lease_seconds

    def take(self, relay: str, limit: int) -> int | None:
        """One free slot of the relay (its number), or None when all `limit` are held."""
        with db.write(self.engine) as conn:
            rows = _slots(conn, relay, limit)
            if len(rows) < limit:
                _add_slots(conn, relay, limit)
                rows = _slots(conn, relay, limit)
            now = utcnow()
            for slot, owner, until in rows:
                if lease_free(owner, until, now) and self._claim(conn, relay, slot, owner):
                    return slot
        return None

    def _claim(self, conn: Connection, relay: str, slot: int, seen: str | None) -> bool:
        """Takes the slot if its holder is still the one we saw (one of two takers wins)."""
        holder = relay_slots.c.owner.is_(None) if seen is None else relay_slots.c.owner == seen
        return conn.execute(update(relay_slots).where(
            relay_slots.c.relay == relay, relay_slots.c.slot == slot, holder).values(
            owner=self.owner, until=utcnow() + timedelta(seconds=self.lease_seconds))).rowcount == 1

    def give_back(self, relay: str, slot: int) -> None:
        with db.write(self.engine) as conn:
            conn.execute(update(relay_slots).where(
                relay_slots.c.relay == relay, relay_slots.c.slot == slot,
                relay_slots.c.owner == self.owner).values(owner=None, until=None))

    def extend(self, conn: Connection) -> None:
        """The holder is alive: its slots' leases start over (inside the caller's transaction)."""
        conn.execute(update(relay_slots).where(relay_slots.c.owner == self.owner).values(
            until=utcnow() + timedelta(seconds=self.lease_seconds)))


def _slots(conn: Connection, relay: str, limit: int) -> list:
    return conn.execute(select(relay_slots.c.slot, relay_slots.c.owner, relay_slots.c.until).where(
        relay_slots.c.relay == relay, relay_slots.c.slot < limit).order_by(relay_slots.c.slot)).all()


def _add_slots(conn: Connection, relay: str, limit: int) -> None:
    """Rows for slots 0 .. limit - 1 that do not exist yet (another process may add them too)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(insert(relay_slots).values([{"relay": relay, "slot": n} for n in range(limit)])
                 .on_conflict_do_nothing())
