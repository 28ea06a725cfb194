"""Which campaigns a list's public archive shows: finished ones marked `archive` that went to
the list, newest first, each with the message version it sent (the split test's winner)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from . import splittest
from .models import campaigns


def published(conn: Connection, list_id: int, limit: int = 200) -> list[dict[str, Any]]:
    """The list's archived campaigns, newest (finished last) first."""
    c = campaigns.c
    rows = conn.execute(select(c.id, c.name, c.list_ids, c.version_id, c.finished_at).where(
        c.archive.is_(True), c.state == "finished", c.transactional.is_(False),
        c.workflow_id.is_(None), c.version_id.is_not(None)).order_by(
        c.finished_at.desc(), c.id.desc())).mappings()
    # list_ids is JSON (no portable "contains" on both databases); archived campaigns are few.
    found = [dict(r) for r in rows if list_id in (r["list_ids"] or [])]
    return found[:limit]


def published_one(conn: Connection, list_id: int, campaign_id: int) -> dict[str, Any] | None:
    """The campaign when the list's archive shows it, else None."""
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None or not (row["archive"] and row["state"] == "finished" and row["version_id"]
                           and not row["transactional"] and row["workflow_id"] is None
                           and list_id in (row["list_ids"] or [])):
        return None
    return dict(row)


def sent_version(conn: Connection, campaign: dict[str, Any]) -> dict[str, Any]:
    """The message version the campaign sent: its pinned one, or its split test's winner (with
    the variant's subject)."""
    parts = splittest.sending_parts(conn, campaign)
    if len(parts) == 1:
        return next(iter(parts.values()))[1]
    test = splittest.get(conn, campaign["id"])
    winner = test["winner"] if test is not None else None
    return parts[winner][1] if winner in parts else parts[min(parts)][1]

