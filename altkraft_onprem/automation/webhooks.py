"""Outgoing webhooks: subscriptions, the fan-out of outbox rows into deliveries, redelivery.

A delivery is the envelope `{id, type, occurred_at, data}` as signed (the body never
changes between tries, and `webhook-id` is the same on each, so a receiver can de-duplicate).
Sending, retries and auto-disable are in webhook_sender.py.
"""
from __future__ import annotations

import base64
import json
import os
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from altkraft_onprem import db, http_guard
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.audience.models import lists, subscriber_lists
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from . import interest
from .models import WEBHOOK_EVENT_TYPES, webhook_deliveries, webhooks

SECRET_PREFIX = "whsec_"
EXCERPT_CHARS = 500
TRACKED_TYPES = {"open": "email.opened", "read": "email.read", "click": "email.clicked"}


def policy(settings) -> http_guard.Policy:
    """The SSRF rules for webhook and workflow HTTP targets (no redirects are followed)."""
    return http_guard.Policy(
        networks_setting="automation.webhook_allowed_private_networks",
        allowed_networks=settings["automation.webhook_allowed_private_networks"],
        timeout=settings["automation.webhook_timeout_seconds"],
        max_bytes=16 * 1024, fail_when_larger=False,
        user_agent="ALTKRAFT-OnPremise/1 (webhooks)")


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(24)).decode()


# --- subscriptions -----------------------------------------------------------------------------

def _clean_types(types) -> list[str]:
    if not isinstance(types, (list, tuple)) or not types:
        raise ServiceError("choose at least one event type", "events")
    unknown = [t for t in types if t not in WEBHOOK_EVENT_TYPES]
    if unknown:
        raise ServiceError("unknown event type %(unknown)s", "events", unknown=repr(unknown[0]))
    return sorted(set(types))


def _clean_url(settings, url) -> str:
    url = (url or "").strip()
    if not url or len(url) > 2000:
        raise ServiceError("a URL of at most 2000 characters is required", "url")
    try:
        http_guard.check_url(policy(settings), url)
    except http_guard.Unreachable:
        pass                    # a name that does not resolve today may tomorrow
    except http_guard.Refused as exc:
        raise ServiceError.like(exc, "url") from None
    return url


def _check_list(conn: Connection, list_id) -> int | None:
    if list_id is None:
        return None
    if conn.execute(select(lists.c.id).where(lists.c.id == list_id)).first() is None:
        raise NotFound("no such list: %(list_id)s", "list_id", list_id=list_id)
    return list_id


def _changed(conn: Connection) -> None:
    interest.invalidate()
    db.after_commit(conn, "automation.interest", interest.invalidate)


def create(conn: Connection, actor: Actor, settings, *, url: str, events, list_id: int | None = None,
           description: str = "") -> dict:
    """A new active subscription; returns {"id", "secret"} (the secret is shown this once)."""
    now = utcnow()
    secret = new_secret()
    webhook_id = conn.execute(webhooks.insert().values(
        url=_clean_url(settings, url), event_types=_clean_types(events),
        list_id=_check_list(conn, list_id), secret=secret, active=True, consecutive_failures=0,
        description=(description or "")[:200], created_at=now, created_by=actor.label[:320],
        updated_at=now).returning(webhooks.c.id)).scalar_one()
    record(conn, actor, "webhook.create", "webhook", webhook_id, url=url, events=list(events),
           list_id=list_id)
    _changed(conn)
    return {"id": webhook_id, "secret": secret}


def update_webhook(conn: Connection, actor: Actor, settings, webhook_id: int, **changes) -> dict:
    """Changes url, events, list_id, description, active; `rotate_secret` makes a new secret
    (the old one keeps signing alongside until the next rotation). Returns the subscription
    (with "secret" when it was rotated)."""
    current = get(conn, webhook_id, with_secrets=True)
    values: dict[str, Any] = {}
    if changes.get("url") is not None:
        values["url"] = _clean_url(settings, changes["url"])
    if changes.get("events") is not None:
        values["event_types"] = _clean_types(changes["events"])
    if "list_id" in changes:
        values["list_id"] = _check_list(conn, changes["list_id"])
    if changes.get("description") is not None:
        values["description"] = changes["description"][:200]
    if changes.get("active") is not None:
        values["active"] = bool(changes["active"])
        if values["active"]:
            values.update(consecutive_failures=0, disabled_reason=None)
    secret = None
    if changes.get("rotate_secret"):
        secret = new_secret()
        values.update(secret=secret, previous_secret=current["secret"])
    if values:
        conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(
            **values, updated_at=utcnow()))
        record(conn, actor, "webhook.update", "webhook", webhook_id,
               fields=sorted(k for k in values if k not in ("secret", "previous_secret")),
               rotated=secret is not None)
        _changed(conn)
    found = get(conn, webhook_id)
    if secret is not None:
        found["secret"] = secret
    return found


def delete_webhook(conn: Connection, actor: Actor, webhook_id: int) -> None:
    get(conn, webhook_id)
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))
    record(conn, actor, "webhook.delete", "webhook", webhook_id)
    _changed(conn)


_PUBLIC = ("id", "url", "event_types", "list_id", "active", "consecutive_failures",
           "disabled_reason", "description", "created_at", "created_by", "updated_at")


def _out(row) -> dict:
    item = {k: row._mapping[k] for k in _PUBLIC}
    item["events"] = item.pop("event_types")
    return item


def get(conn: Connection, webhook_id: int, *, with_secrets: bool = False) -> dict:
    row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).first()
    if row is None:
        raise NotFound("webhook %(webhook_id)s does not exist", webhook_id=webhook_id)
    item = _out(row)
    if with_secrets:
        item.update(secret=row.secret, previous_secret=row.previous_secret)
    return item


def list_webhooks(conn: Connection) -> list[dict]:
    return [_out(r) for r in conn.execute(select(webhooks).order_by(webhooks.c.id))]


# --- fan-out of outbox rows ---------------------------------------------------------------------

def parts(row: dict) -> list[tuple[int, str, dict]]:
    """(part, webhook event type, data) of one outbox row."""
    name, payload = row["type"], row["payload"]
    if name == "delivery.outcomes":
        return [(i, f"delivery.{state}", {"campaign_id": campaign_id, "subscriber_id": subscriber_id,
                                          "occurrence": occurrence})
                for i, (campaign_id, subscriber_id, occurrence, state) in enumerate(payload["outcomes"])]
    if name == "email.tracked":
        return [(i, TRACKED_TYPES[event["kind"]], event) for i, event in enumerate(payload["events"])
                if event.get("kind") in TRACKED_TYPES]
    if name in WEBHOOK_EVENT_TYPES:
        return [(0, name, payload)]
    return []


def _for_list(conn: Connection, list_id: int, data: dict) -> dict | None:
    """The data as a list-filtered subscription sees it (None: not about that list)."""
    if "list_id" in data:
        return data if data["list_id"] == list_id else None
    members = select(subscriber_lists.c.subscriber_id).where(subscriber_lists.c.list_id == list_id)
    if data.get("subscriber_id") is not None:
        found = conn.execute(members.where(
            subscriber_lists.c.subscriber_id == data["subscriber_id"])).first()
        return data if found is not None else None
    if data.get("subscriber_ids"):
        ids = set(conn.execute(members.where(
            subscriber_lists.c.subscriber_id.in_(data["subscriber_ids"]))).scalars())
        kept = [i for i in data["subscriber_ids"] if i in ids]
        return {**data, "subscriber_ids": kept} if kept else None
    return None


def fan_out(conn: Connection, rows: list[dict]) -> int:
    """Deliveries of these outbox rows to every active subscription that wants them (once:
    UNIQUE webhook, outbox row, part). Returns how many were created."""
    found = [(row, parts(row)) for row in rows]
    wanted = {t for _, row_parts in found for _, t, _ in row_parts}
    if not wanted:
        return 0
    subscribers_ = [s for s in conn.execute(select(
        webhooks.c.id, webhooks.c.event_types, webhooks.c.list_id).where(webhooks.c.active.is_(True)))
        if wanted & set(s.event_types or ())]
    if not subscribers_:
        return 0
    now = utcnow()
    values = []
    for row, row_parts in found:
        occurred = row["occurred_at"].isoformat().replace("+00:00", "Z")
        for part, event_type, data in row_parts:
            event_id = f"evt_{row['id']}_{part}"
            for subscription in subscribers_:
                if event_type not in subscription.event_types:
                    continue
                shown = data if subscription.list_id is None else _for_list(conn, subscription.list_id, data)
                if shown is None:
                    continue
                body = json.dumps({"id": event_id, "type": event_type, "occurred_at": occurred,
                                   "data": shown}, separators=(",", ":"), ensure_ascii=False, default=str)
                values.append({"webhook_id": subscription.id, "outbox_id": row["id"], "part": part,
                               "event_id": event_id, "type": event_type, "body": body,
                               "state": "pending", "attempts": 0, "next_attempt_at": now,
                               "created_at": now})
    for chunk in db.chunked(values, 1000):
        conn.execute(db.insert_ignoring_conflicts(
            conn, webhook_deliveries, ["webhook_id", "outbox_id", "part"]), chunk)
    return len(values)


# --- the delivery log ---------------------------------------------------------------------------

_LOG_COLUMNS = (webhook_deliveries.c.id, webhook_deliveries.c.event_id, webhook_deliveries.c.type,
                webhook_deliveries.c.state, webhook_deliveries.c.attempts,
                webhook_deliveries.c.last_status, webhook_deliveries.c.last_error,
                webhook_deliveries.c.response_excerpt, webhook_deliveries.c.created_at,
                webhook_deliveries.c.last_attempt_at, webhook_deliveries.c.next_attempt_at,
                webhook_deliveries.c.delivered_at)


def deliveries(conn: Connection, webhook_id: int, *, state: str | None = None, limit: int = 100,
               offset: int = 0) -> tuple[list[dict], int]:
    """Newest first, with the total."""
    get(conn, webhook_id)
    where = [webhook_deliveries.c.webhook_id == webhook_id]
    if state:
        where.append(webhook_deliveries.c.state == state)
    total = conn.execute(select(func.count()).select_from(webhook_deliveries).where(*where)).scalar_one()
    rows = conn.execute(select(*_LOG_COLUMNS).where(*where).order_by(
        webhook_deliveries.c.id.desc()).limit(limit).offset(offset)).mappings()
    return [dict(r) for r in rows], total


def get_delivery(conn: Connection, webhook_id: int, delivery_id: int) -> dict:
    row = conn.execute(select(*_LOG_COLUMNS, webhook_deliveries.c.body).where(
        webhook_deliveries.c.id == delivery_id,
        webhook_deliveries.c.webhook_id == webhook_id)).mappings().first()
    if row is None:
        raise NotFound("delivery %(delivery_id)s of webhook %(webhook_id)s does not exist", delivery_id=delivery_id, webhook_id=webhook_id)
    return dict(row)


def redeliver(conn: Connection, actor: Actor, webhook_id: int, delivery_id: int) -> dict:
    """Queues the same event (same id and body) again now, whatever its state; the retry
    schedule starts over."""
    get_delivery(conn, webhook_id, delivery_id)
    conn.execute(update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(
        state="pending", attempts=0, next_attempt_at=utcnow(), lease_owner=None, lease_until=None))
    record(conn, actor, "webhook.redeliver", "webhook", webhook_id, delivery_id=delivery_id)
    return get_delivery(conn, webhook_id, delivery_id)
