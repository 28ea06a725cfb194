"""What became of transactional sends: one send, a filtered list, counts per category and
state, and the carriers (one per message version) with their state — for the API and the
report page."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from altkraft_onprem.errors import NotFound
from altkraft_onprem.i18n import N_
from altkraft_onprem.messages.models import messages

from .models import campaigns, deliveries, transactional_sends

# What a send shows: the ledger row's state, its two in-progress states as one.
SEND_STATES = ("queued", "sent", "failed", "in_doubt", "skipped", "cancelled")
SEND_STATE_LABELS = (N_("queued"), N_("sent"), N_("failed"), N_("in_doubt"), N_("skipped"),
                     N_("cancelled"))
_LEDGER = and_(deliveries.c.campaign_id == transactional_sends.c.campaign_id,
               deliveries.c.subscriber_id == transactional_sends.c.subscriber_id,
               deliveries.c.occurrence == transactional_sends.c.id)


def _state(ledger_state: str | None) -> str:
    return "queued" if ledger_state in (None, "queued", "leased") else ledger_state


def _query():
    t = transactional_sends.c
    return select(t.id, t.message_id, t.campaign_id, t.subscriber_id, t.email, t.mode, t.category,
                  t.strict, t.idempotency_key, t.created_at, t.created_by,
                  deliveries.c.state.label("ledger_state"), deliveries.c.done_at,
                  deliveries.c.reply, deliveries.c.message_id.label("message_header"),
                  deliveries.c.attempts, messages.c.name.label("message_name")).select_from(
        transactional_sends.join(deliveries, _LEDGER, isouter=True)
        .join(messages, messages.c.id == t.message_id, isouter=True))


def _out(row) -> dict[str, Any]:
    item = dict(row._mapping)
    item["state"] = _state(item.pop("ledger_state"))
    item["subscriber_id"] = item["subscriber_id"] or None
    return item


def get_send(conn: Connection, send_id: int) -> dict[str, Any]:
    row = conn.execute(_query().where(transactional_sends.c.id == send_id)).first()
    if row is None:
        raise NotFound("transactional send %(send_id)s does not exist", send_id=send_id)
    return _out(row)


def _ledger_states(state: str) -> tuple[str, ...]:
    return ("queued", "leased") if state == "queued" else (state,)


def list_sends(conn: Connection, *, state: str | None = None, category: str | None = None,
               email: str | None = None, message_id: int | None = None,
               since: datetime | None = None, limit: int = 50, offset: int = 0) -> list[dict]:
    """Newest first, filtered by state, category, address (exact, any letter case), message,
    accepted since."""
    t = transactional_sends.c
    query = _query()
    if state:
        query = query.where(deliveries.c.state.in_(_ledger_states(state)))
    if category:
        query = query.where(t.category == category.lower())
    if email:
        query = query.where(t.email == email.strip().lower())
    if message_id:
        query = query.where(t.message_id == message_id)
    if since is not None:
        query = query.where(t.created_at >= since)
    rows = conn.execute(query.order_by(t.id.desc()).limit(limit).offset(offset))
    return [_out(row) for row in rows]


def summary(conn: Connection, since: datetime) -> list[dict[str, Any]]:
    """Per category (None: none given) the sends accepted since then, by state; categories
    with the most sends first."""
    t = transactional_sends.c
    rows = conn.execute(select(t.category, deliveries.c.state, func.count()).select_from(
        transactional_sends.join(deliveries, _LEDGER, isouter=True)).where(
        t.created_at >= since).group_by(t.category, deliveries.c.state)).all()
    found: dict[str | None, dict[str, Any]] = {}
    for category, ledger_state, count in rows:
        entry = found.setdefault(category, {"category": category, "total": 0,
                                            **dict.fromkeys(SEND_STATES, 0)})
        entry[_state(ledger_state)] += count
        entry["total"] += count
    return sorted(found.values(), key=lambda e: (-e["total"], e["category"] or ""))


def carriers(conn: Connection) -> list[dict[str, Any]]:
    """The transactional campaigns still taking or sending rows (one per message version and
    sender), with their state and the reason of a pause, newest first."""
    c = campaigns.c
    rows = conn.execute(select(c.id, c.name, c.state, c.message_id, c.version_id, c.from_email,
                               c.pause_reason, c.started_at).where(
        c.transactional.is_(True), c.state.in_(("running", "paused"))).order_by(c.id.desc()))
    return [dict(row._mapping) for row in rows]
