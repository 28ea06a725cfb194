"""Inbound mail services: run the pipeline over stored messages and apply the verdicts —
bounces and complaints recorded, addresses suppressed, mailto unsubscribes carried out, the
domain events emitted (effects.py) — a batch per transaction, each message guarded by its
state so that two workers never apply one message twice.

A worker leases the batch it judges (`lease_owner`, `lease_until`), so that two workers do
not parse the same messages; the lease only saves work — exactly once rests on the state.
A lease is free once it expired or its holder died on this host (holders.py).
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta

from flask import has_app_context
from sqlalchemy import Connection, bindparam, or_, select, update

from altkraft_onprem import config, db
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound
from altkraft_onprem.holders import owner_dead, owner_name

from . import rules
from .addresses import Recogniser
from .effects import (
    ACTOR,
    apply_batch,
    effects,
    hard_reason,
    mark_suppressed,
    record_bounce,
    record_complaint,
)
from .intake import raw_message
from .models import bounces, complaints, inbound_messages
from .parse import Recipient, status_code
from .pipeline import Verdict, judge

# Written in effects.py; the relay webhooks (and tests) call them through the service.
__all__ = ["record_bounce", "record_complaint"]

log = logging.getLogger(__name__)
BATCH = 500
LEASE_SECONDS = 120


def process_pending(engine, settings, limit: int = BATCH, ids: list[int] | None = None) -> list[dict]:
    """Judges up to `limit` stored messages waiting in the intake (or the given ones) and
    applies the verdicts; returns [{id, state, outcome}] of those this call applied. Messages
    another worker has leased are left to it."""
    ids = _lease(engine, limit) if ids is None else ids
    if not ids:
        return []
    recogniser = Recogniser(settings)
    judged = []
    with db.read(engine) as conn:
        for row in conn.execute(select(inbound_messages.c.id, inbound_messages.c.rcpt, inbound_messages.c.raw)
                                .where(inbound_messages.c.id.in_(ids), inbound_messages.c.state == "new")
                                .order_by(inbound_messages.c.id)).all():
            try:
                verdict = judge(conn, settings, recogniser, row.rcpt, raw_message(row.raw))
            except Exception as exc:  # noqa: BLE001 - kept for a person; never lost
                log.exception("inbound: message %s could not be judged", row.id)
                verdict = Verdict("failed", "none", notes=[f"internal error: {exc.__class__.__name__}"])
            judged.append((row.id, verdict))
    if not judged:
        return []
    with db.write(engine) as conn:
        return _apply_all(conn, settings, judged)


def _lease(engine, limit: int) -> list[int]:
    """Leases up to `limit` waiting messages nobody holds; frees the leases of holders that
    died when nothing else is left."""
    for _attempt in range(2):
        now = utcnow()
        m = inbound_messages.c
        free = select(m.id).where(m.state == "new", or_(m.lease_until.is_(None), m.lease_until <= now)
                                  ).order_by(m.id).limit(limit)
        with db.write(engine) as conn:
            if conn.dialect.name == "postgresql":
                free = free.with_for_update(skip_locked=True)
            leased = list(conn.execute(update(inbound_messages).where(m.id.in_(free.scalar_subquery()))
                                       .values(lease_owner=owner_name(), lease_until=now + timedelta(seconds=LEASE_SECONDS))
                                       .returning(m.id)).scalars())
            if leased or not _free_dead_leases(conn, now):
                return sorted(leased)
    return []


def _free_dead_leases(conn: Connection, now) -> bool:
    """Frees the leases of waiting messages whose holder is gone; whether there were any."""
    m = inbound_messages.c
    holders = conn.execute(select(m.lease_owner).where(m.state == "new", m.lease_until > now)
                           .group_by(m.lease_owner)).scalars().all()
    dead = [owner for owner in holders if owner and owner_dead(owner)]
    if dead:
        conn.execute(update(inbound_messages).where(m.state == "new", m.lease_owner.in_(dead))
                     .values(lease_owner=None, lease_until=None))
    return bool(dead)


def _apply_all(conn: Connection, settings, judged: list[tuple[int, Verdict]]) -> list[dict]:
    """Applies a batch of verdicts in one go; if anything in it fails, one by one (so that one
    bad message marks only itself failed)."""
    savepoint = conn.begin_nested()
    try:
        claimed = _claim_batch(conn, judged)
        apply_batch(conn, settings, claimed)
        savepoint.commit()
    except Exception:  # noqa: BLE001 - retried message by message below
        savepoint.rollback()
        log.warning("inbound: a batch of %d could not be applied at once; one by one", len(judged),
                    exc_info=True)
        return [{"id": i, "state": v.state, "outcome": v.outcome}
                for i, v in judged if apply(conn, settings, i, v)]
    return [{"id": i, "state": v.state, "outcome": v.outcome} for i, v in claimed]


def _claim_batch(conn: Connection, judged: list[tuple[int, Verdict]]) -> list[tuple[int, Verdict]]:
    """Marks those of the judged messages that still wait with their verdicts; returns them.
    Postgres locks them first, so a second worker waits, then finds them done."""
    query = select(inbound_messages.c.id).where(
        inbound_messages.c.id.in_([i for i, _ in judged]), inbound_messages.c.state == "new"
    ).order_by(inbound_messages.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    waiting = set(conn.execute(query).scalars())
    claimed = [(i, v) for i, v in judged if i in waiting]
    if claimed:
        conn.execute(_CLAIM, [_claim_values(i, v) for i, v in claimed])
    return claimed


def apply(conn: Connection, settings, inbound_id: int, verdict: Verdict) -> bool:
    """Applies one verdict unless another worker already did (False then)."""
    savepoint = conn.begin_nested()
    try:
        if not _claim(conn, inbound_id, verdict):
            savepoint.rollback()
            return False
        effects(conn, settings, inbound_id, verdict)
        savepoint.commit()
        return True
    except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
        savepoint.rollback()
        log.exception("inbound: message %s could not be applied", inbound_id)
        failed = Verdict("failed", "none", verdict.subject,
                         notes=[*verdict.notes, f"internal error: {exc.__class__.__name__}"])
        return _claim(conn, inbound_id, failed)


# Built once: the pipeline runs it per message.
_CLAIM = update(inbound_messages).where(inbound_messages.c.id == bindparam("claim_id"),
                                        inbound_messages.c.state == "new")


def _claim_values(inbound_id: int, verdict: Verdict) -> dict:
    found = verdict.attribution
    return {"claim_id": inbound_id, "state": verdict.state, "outcome": verdict.outcome,
            "subject": verdict.subject[:200], "campaign_id": found.campaign_id if found else None,
            "subscriber_id": found.subscriber_id if found else None,
            "detail": json.dumps(verdict.detail(), ensure_ascii=False, default=str),
            "processed_at": utcnow(), "lease_owner": None, "lease_until": None}


def _claim(conn: Connection, inbound_id: int, verdict: Verdict) -> bool:
    return conn.execute(_CLAIM, _claim_values(inbound_id, verdict)).rowcount == 1


def relay_rejected(conn: Connection, *, campaign_id: int, subscriber_id: int, email: str | None,
                   code: int, reply: str) -> None:
    """The relay refused a campaign message with a 5xx while it was sent (email.rejected):
    recorded and classified like a bounce that came back by mail — for an outside address
    (a transactional send, subscriber 0) too, so a hard bounce suppresses it."""
    if subscriber_id:
        email = conn.execute(select(subscribers.c.email).where(
            subscribers.c.id == subscriber_id)).scalar()
    if email is None:
        return
    diagnostic = f"{code} {reply}"[:2000]
    status = status_code(reply)
    bounce_class, rule = rules.classify(status, diagnostic)
    recipient = Recipient(address=email, status=status, diagnostic=diagnostic)
    bounce_id = record_bounce(conn, _settings(), inbound_id=None, source="relay",
                              subscriber_id=subscriber_id or None, campaign_id=campaign_id,
                              email=email, bounce_class=bounce_class, rule=rule,
                              rules_version=rules.CURRENT_VERSION, recipient=recipient)
    if not subscriber_id and bounce_class == "hard":
        # An outside address has no soft-bounce history: a hard bounce suppresses it at once.
        audience.suppress(conn, ACTOR, email=email, reason=hard_reason(recipient), source="bounce")
        mark_suppressed(conn, [bounce_id])


def _settings():
    """The settings of the app running this job or request; the defaults in a process that
    has none (a campaign run driven directly, as the tests and benchmarks do)."""
    return current_settings() if has_app_context() else config.load(environ={})


def get_message(conn: Connection, inbound_id: int) -> dict:
    row = conn.execute(select(inbound_messages).where(inbound_messages.c.id == inbound_id)).first()
    if row is None:
        raise NotFound("inbound message %(inbound_id)s does not exist", inbound_id=inbound_id)
    found = dict(row._mapping)
    found["raw"] = raw_message(found["raw"])
    found["detail"] = json.loads(found["detail"] or "{}")
    return found


def waiting(engine) -> bool:
    """Whether any stored message waits for the pipeline."""
    with db.read(engine) as conn:
        return conn.execute(select(inbound_messages.c.id).where(
            inbound_messages.c.state == "new").limit(1)).first() is not None


def outcome(conn: Connection, inbound_id: int) -> dict:
    """What became of one stored message (for `altkraft inbound replay` and the API)."""
    found = get_message(conn, inbound_id)
    out = {key: found[key] for key in ("state", "outcome", "rcpt", "subject", "campaign_id",
                                       "subscriber_id")}
    out.update(id=inbound_id, **{k: v for k, v in found["detail"].items() if k != "recipient"})
    recipient = found["detail"].get("recipient")
    if recipient:
        out.update(status=recipient.get("status", ""), diagnostic=recipient.get("diagnostic", ""))
    bounce = conn.execute(select(bounces.c.id, bounces.c.suppressed).where(
        bounces.c.inbound_id == inbound_id)).first()
    if bounce is not None:
        out.update(bounce_id=bounce.id, suppressed=bool(bounce.suppressed))
    complaint = conn.execute(select(complaints.c.id).where(complaints.c.inbound_id == inbound_id)).scalar()
    if complaint is not None:
        out.update(complaint_id=complaint, suppressed=True)
    return out
