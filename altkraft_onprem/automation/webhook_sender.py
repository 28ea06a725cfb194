"""Sending webhook deliveries: claim due ones with a lease, POST them signed (Standard
Webhooks), record the answer, retry on a schedule, switch a failing subscription off.

Requests run outside any transaction, a few at a time, each bounded by
`automation.webhook_timeout_seconds`: a slow or dead receiver costs one thread that long and
no more. A delivery whose holder died comes back when its lease expires (at-least-once: the
receiver sees the same `webhook-id` again and can de-duplicate).
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, or_, select, update
from standardwebhooks.webhooks import Webhook

from altkraft_onprem import db, http_guard
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.access.service import record
from altkraft_onprem.campaigns.ledger import owner_dead
from altkraft_onprem.db.types import utcnow

from . import interest
from .models import webhook_deliveries, webhooks
from .webhooks import EXCERPT_CHARS, policy

log = logging.getLogger("altkraft.webhooks")
# After the 1st, 2nd, … failed try: ~1 m, 5 m, 30 m, 2 h, 6 h, 12 h, 24 h; then it has failed.
RETRY_SECONDS = (60, 300, 1800, 7200, 21600, 43200, 86400)
LEASE_SECONDS = 120
BATCH = 50


@dataclass
class Answer:
    status: int | None          # None: no HTTP answer (network, refused by the SSRF rules)
    error: str | None
    excerpt: str | None
    retryable: bool

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signature(secrets: list[str], event_id: str, at: datetime, body: str) -> str:
    """The webhook-signature header: one `v1,…` per secret (two while a secret rotates)."""
    return " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets if secret)


def post(settings, url: str, secrets: list[str], event_id: str, body: str,
         now: datetime | None = None) -> Answer:
    at = now or utcnow()
    headers = {"Content-Type": "application/json", "webhook-id": event_id,
               "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": signature(secrets, event_id, at, body)}
    try:
        response = http_guard.request(policy(settings), "POST", url, body=body.encode(),
                                      headers=headers, follow_redirects=False)
    except http_guard.Unreachable as exc:
        return Answer(None, exc.message, None, retryable=True)
    except http_guard.Refused as exc:
        return Answer(None, exc.message, None, retryable=False)
    excerpt = response.body[:EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
    status = response.status
    retryable = status >= 500 or status in (408, 429)
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return Answer(status, error, excerpt, retryable)


def claim(conn: Connection, owner: str, size: int = BATCH, now: datetime | None = None) -> list[dict]:
    """Leases due deliveries of active subscriptions (and expired leases) to `owner`."""
    now = now or utcnow()
    due = select(webhook_deliveries.c.id).join(
        webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id).where(
        webhooks.c.active.is_(True),
        or_(webhook_deliveries.c.state == "pending",
            (webhook_deliveries.c.state == "leased") & (webhook_deliveries.c.lease_until < now)),
        webhook_deliveries.c.next_attempt_at <= now).order_by(webhook_deliveries.c.id).limit(size)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(of=webhook_deliveries, skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id.in_(ids)).values(
        state="leased", lease_owner=owner, lease_until=now + timedelta(seconds=LEASE_SECONDS)))
    rows = conn.execute(select(
        webhook_deliveries.c.id, webhook_deliveries.c.webhook_id, webhook_deliveries.c.event_id,
        webhook_deliveries.c.body, webhook_deliveries.c.attempts, webhooks.c.url, webhooks.c.secret,
        webhooks.c.previous_secret).join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        .where(webhook_deliveries.c.id.in_(ids)).order_by(webhook_deliveries.c.id)).mappings()
    return [dict(r) for r in rows]


def record_answer(conn: Connection, settings, delivery: dict, owner: str, answer: Answer,
                  now: datetime | None = None) -> str | None:
    """The delivery's new state after one try (None: the lease was lost meanwhile). Counts
    the subscription's failures in a row and switches it off at the configured number."""
    now = now or utcnow()
    attempts = delivery["attempts"] + 1
    values = {"attempts": attempts, "last_status": answer.status, "last_error": answer.error,
              "response_excerpt": answer.excerpt, "last_attempt_at": now,
              "lease_owner": None, "lease_until": None}
    if answer.ok:
        state = "delivered"
        values["delivered_at"] = now
    elif answer.retryable and attempts <= len(RETRY_SECONDS):
        state = "pending"
        values["next_attempt_at"] = now + timedelta(seconds=RETRY_SECONDS[attempts - 1])
    else:
        state = "failed"
    changed = conn.execute(update(webhook_deliveries).where(
        webhook_deliveries.c.id == delivery["id"], webhook_deliveries.c.lease_owner == owner,
        webhook_deliveries.c.state == "leased").values(state=state, **values)).rowcount
    if not changed:
        return None
    if answer.ok:
        conn.execute(update(webhooks).where(webhooks.c.id == delivery["webhook_id"],
                                            webhooks.c.consecutive_failures != 0)
                     .values(consecutive_failures=0))
    else:
        _count_failure(conn, settings, delivery["webhook_id"], answer)
    return state


def _count_failure(conn: Connection, settings, webhook_id: int, answer: Answer) -> None:
    conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(
        consecutive_failures=webhooks.c.consecutive_failures + 1))
    row = conn.execute(select(webhooks.c.consecutive_failures, webhooks.c.active, webhooks.c.url)
                       .where(webhooks.c.id == webhook_id)).first()
    limit = settings["automation.webhook_disable_after"]
    if row.active and row.consecutive_failures >= limit:
        reason = (f"switched off after {row.consecutive_failures} failed attempts in a row; "
                  f"the last: {answer.error}")
        conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(
            active=False, disabled_reason=reason[:1000], updated_at=utcnow()))
        record(conn, system_actor("webhooks"), "webhook.disable", "webhook", webhook_id,
               reason=reason)
        interest.invalidate()
        db.after_commit(conn, f"automation.webhook_disabled.{webhook_id}",
                        lambda: _disabled_hooks(webhook_id, row.url, reason))
        log.warning("webhook %s (%s) %s", webhook_id, row.url, reason)


# Called after the commit that switched a subscription off (jobs.py sets the admins' notice).
_on_disabled: list = []


def on_disabled(callback) -> None:
    if callback not in _on_disabled:
        _on_disabled.append(callback)


def _disabled_hooks(webhook_id: int, url: str, reason: str) -> None:
    for callback in _on_disabled:
        try:
            callback(webhook_id, url, reason)
        except Exception:  # noqa: BLE001 - a notice that fails must not undo the switch-off
            log.exception("notice about webhook %s failed", webhook_id)


def recover(conn: Connection) -> int:
    """Deliveries leased by a sender that died on this host are due again at once."""
    owners = conn.execute(select(webhook_deliveries.c.lease_owner).where(
        webhook_deliveries.c.state == "leased").distinct()).scalars().all()
    freed = 0
    for owner in owners:
        if owner and owner_dead(owner):
            freed += conn.execute(update(webhook_deliveries).where(
                webhook_deliveries.c.lease_owner == owner, webhook_deliveries.c.state == "leased")
                .values(state="pending", lease_owner=None, lease_until=None)).rowcount
    return freed


def deliver_due(engine: Engine, settings, owner: str, max_batches: int | None = None) -> int:
    """Sends what is due until nothing is; returns how many tries were made."""
    tries = 0
    batches = 0
    threads = settings["automation.webhook_concurrency"]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        while max_batches is None or batches < max_batches:
            with db.write(engine) as conn:
                claimed = claim(conn, owner)
            if not claimed:
                break
            answers = pool.map(lambda d: post(settings, d["url"], [d["secret"], d["previous_secret"]],
                                              d["event_id"], d["body"]), claimed)
            with db.write(engine) as conn:
                for delivery, answer in zip(claimed, answers, strict=True):
                    record_answer(conn, settings, delivery, owner, answer)
            tries += len(claimed)
            batches += 1
    return tries
