"""The audit log: every change made on behalf of a person or token, written in the same
transaction as the change (`record`), and read back for the audit page, API and CSV.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from altkraft_onprem import db
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError

from .models import Actor, audit_log


def record(conn: Connection, actor: Actor, action: str, target_type: str = "",
           target_id: Any = "", **details: Any) -> None:
    """Append one audit entry: who (actor), what (action + target), when, from where."""
    conn.execute(insert(audit_log).values(
        at=utcnow(), actor_user_id=actor.user_id, actor_token_id=actor.token_id,
        actor=actor.label, ip=actor.ip, action=action, target_type=target_type,
        target_id=str(target_id), details=json.dumps(details, default=str, ensure_ascii=False)))


def record_many(conn: Connection, actor: Actor, action: str, target_type: str,
                entries: list[tuple[Any, dict[str, Any]]]) -> None:
    """`record` for many targets of one action at once: (target id, details) each."""
    if not entries:
        return
    at = utcnow()
    text: dict[int, str] = {}           # one JSON per details object (callers share them)
    for _, details in entries:
        if id(details) not in text:
            text[id(details)] = json.dumps(details, default=str, ensure_ascii=False)
    db.insert_many(conn, audit_log, [
        {"at": at, "actor_user_id": actor.user_id, "actor_token_id": actor.token_id,
         "actor": actor.label, "ip": actor.ip, "action": action, "target_type": target_type,
         "target_id": str(target_id), "details": text[id(details)]}
        for target_id, details in entries])


def audit_entries(conn: Connection, *, actor: str | None = None, action: str | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  limit: int = 100, offset: int = 0) -> list[dict]:
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit).offset(offset)
    if actor:
        query = query.where(audit_log.c.actor.ilike(f"%{_escape_like(actor)}%", escape="\\"))
    if action:
        query = query.where(audit_log.c.action.like(f"{_escape_like(action)}%", escape="\\"))
    if since:
        query = query.where(audit_log.c.at >= _as_utc(since))
    if until:
        query = query.where(audit_log.c.at < _as_utc(until))
    rows = []
    for row in conn.execute(query).mappings():
        entry = dict(row)
        entry["details"] = json.loads(entry["details"] or "{}")
        rows.append(entry)
    return rows


def _as_utc(moment: datetime) -> datetime:
    """Times without a zone are UTC (the log's own zone)."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ServiceError("%(moment)s is outside the years 1-9999 in UTC", "since",
                           moment=moment.isoformat()) from None


def audit_csv(entries: Iterable[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "ip", "action", "target_type", "target_id", "details"])
    for e in entries:
        writer.writerow([e["id"], e["at"].isoformat(), e["actor"], e["ip"], e["action"],
                         e["target_type"], e["target_id"], json.dumps(e["details"], ensure_ascii=False)])
    return out.getvalue()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
