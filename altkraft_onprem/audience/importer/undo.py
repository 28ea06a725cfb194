"""Undoing a file import within the trash period: the people it added go to the trash as one
deletion batch (restorable there), the memberships it added to people who existed are removed,
and the fields it changed get their previous values back (from import_changes, see writer.py).

What was edited since the import is kept and counted in `kept_edits` (people): a person it
added who was changed since (fields, state or a membership) stays; a field changed since keeps
its new value; a membership changed since (an unsubscribe, a confirmation) stays.
A dry run counts the same without writing.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update

from altkraft_onprem import events
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.scope import require_lists
from altkraft_onprem.access.service import record as audit
from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.audience.trash import delete_to_trash
from altkraft_onprem.db import among
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound

from .models import IMPORT_SOURCE, import_changes, imports
from .writer import DATE_FIELDS, PROFILE, plain

RESULT_KEYS = ("trashed", "memberships_removed", "fields_restored", "kept_edits")
KEPT_SHOWN = 50          # ids of people kept that the result stores for the import's page
CHUNK = 5000


def lists_of_import(conn: Connection, import_id: int) -> tuple[set[int], str] | None:
    """The lists an import wrote to (access.scope resolver: all of them must be the actor's)."""
    found = conn.execute(select(imports.c.list_ids).where(imports.c.id == import_id)).scalar()
    return None if found is None else (set(json.loads(found or "[]")), "all")


def undo_import(conn: Connection, actor: Actor, import_id: int, *, trash_days: int,
                dry_run: bool = False) -> dict:
    """Undoes the import (or, `dry_run`, only counts what it would do); returns
    {trashed, memberships_removed, fields_restored, kept_edits}. Conflict when it cannot be."""
    job = conn.execute(select(imports).where(imports.c.id == import_id)).first()
    if job is None:
        raise NotFound("no such import")
    require_lists(actor, json.loads(job.list_ids or "[]"), "import", at_least_one=True)
    refuse_undo(job, trash_days)
    now = utcnow()
    if not dry_run:
        # Claimed first: two undos at once cannot both run (the second finds undone_at set).
        claimed = conn.execute(update(imports).where(
            imports.c.id == import_id, imports.c.undone_at.is_(None)).values(undone_at=now)).rowcount
        if not claimed:
            raise Conflict("import %(id)s has been undone already", "import", id=import_id)
    kept: set[int] = set()
    fields_restored, back_to_trash = _restore_fields(conn, import_id, kept, now, dry_run)
    memberships_removed = _remove_memberships(conn, import_id, kept, dry_run)
    trashed, batch = _trash(conn, actor, import_id, back_to_trash, kept, dry_run)
    result = {"trashed": trashed, "memberships_removed": memberships_removed,
              "fields_restored": fields_restored, "kept_edits": len(kept)}
    if not dry_run:
        stored = {**result, "batch": batch, "kept_ids": sorted(kept)[:KEPT_SHOWN]}
        conn.execute(update(imports).where(imports.c.id == import_id).values(
            undo_result=json.dumps(stored)))
        audit(conn, actor, "import.undo", "import", import_id, **stored)
    return result


def refuse_undo(job, trash_days: int, now: datetime | None = None) -> None:
    """Conflict saying why this import cannot be undone (nothing when it can)."""
    if job.state in ("queued", "running"):
        raise Conflict("import %(id)s is still running; undo it when it has finished", "import",
                       id=job.id)
    if job.undone_at is not None:
        raise Conflict("import %(id)s has been undone already", "import", id=job.id)
    if not job.undoable:
        raise Conflict("import %(id)s ran before imports recorded their changes; it cannot be "
                       "undone", "import", id=job.id)
    finished = job.finished_at or job.created_at
    if finished < (now or utcnow()) - timedelta(days=trash_days):
        raise Conflict("import %(id)s finished more than %(days)s days ago (the trash period); "
                       "it can no longer be undone", "import", id=job.id, days=trash_days)


def _restore_fields(conn: Connection, import_id: int, kept: set[int], now: datetime,
                    dry_run: bool) -> tuple[int, list[int]]:
    """Previous values back where the field still holds what the import wrote; returns (how
    many values, people the import brought back from the trash and nobody touched since)."""
    query = (select(import_changes.c.subscriber_id, import_changes.c.at, import_changes.c.changes,
                    subscribers.c.custom, subscribers.c.updated_at, subscribers.c.deleted_at,
                    *(subscribers.c[name] for name in PROFILE))
             .join(subscribers, subscribers.c.id == import_changes.c.subscriber_id)
             .where(import_changes.c.import_id == import_id, import_changes.c.kind == "updated")
             .order_by(import_changes.c.id))
    if not dry_run:
        query = query.with_for_update(of=subscribers)
    restored = 0
    back_to_trash: list[int] = []
    rows: list[dict] = []
    for row in conn.execute(query).all():
        changes = json.loads(row.changes)
        values = {name: row._mapping[name] for name in PROFILE}
        custom = dict(row.custom or {})
        undone: dict[str, dict] = {}
        for name, (before, after) in changes["fields"].items():
            key = name.removeprefix("custom.")
            now_value = plain(custom.get(key) if key != name else values[name])
            if now_value != after:
                kept.add(row.subscriber_id)          # changed since: the newer value stays
                continue
            undone[name] = {"from": after, "to": before}
            if key != name:
                if before is None:
                    custom.pop(key, None)
                else:
                    custom[key] = before
            else:
                values[name] = date.fromisoformat(before) if name in DATE_FIELDS and before else before
        if changes.get("trash"):
            if row.deleted_at is None and row.updated_at <= row.at:
                back_to_trash.append(row.subscriber_id)
            elif row.deleted_at is None:
                kept.add(row.subscriber_id)
        if undone:
            restored += len(undone)
            rows.append({**values, "custom": custom, "_id": row.subscriber_id, "_undone": undone})
    if rows and not dry_run:
        names = (*PROFILE, "custom")
        statement = (update(subscribers).where(subscribers.c.id == bindparam("_id"))
                     .values({**{name: bindparam(f"b_{name}") for name in names}, "updated_at": now}))
        for start in range(0, len(rows), CHUNK):
            conn.execute(statement, [{"_id": r["_id"], **{f"b_{name}": r[name] for name in names}}
                                     for r in rows[start:start + CHUNK]])
        if events.SUBSCRIBER_UPDATED.has_handlers:
            for r in rows:
                events.SUBSCRIBER_UPDATED.emit(conn, subscriber_id=r["_id"], changes=r["_undone"])
    return restored, back_to_trash


def _remove_memberships(conn: Connection, import_id: int, kept: set[int], dry_run: bool) -> int:
    """Removes the memberships the import added that nobody changed since; returns how many."""
    query = (select(import_changes.c.subscriber_id, import_changes.c.list_id,
                    (subscriber_lists.c.updated_at <= import_changes.c.at).label("untouched"))
             .join(subscriber_lists, and_(subscriber_lists.c.subscriber_id == import_changes.c.subscriber_id,
                                          subscriber_lists.c.list_id == import_changes.c.list_id))
             .where(import_changes.c.import_id == import_id, import_changes.c.kind == "joined"))
    removable = []
    for row in conn.execute(query):
        if row.untouched:
            removable.append({"_sid": row.subscriber_id, "_lid": row.list_id})
        else:
            kept.add(row.subscriber_id)              # unsubscribed or confirmed since: stays
    if removable and not dry_run:
        statement = delete(subscriber_lists).where(
            subscriber_lists.c.subscriber_id == bindparam("_sid"),
            subscriber_lists.c.list_id == bindparam("_lid"))
        for start in range(0, len(removable), CHUNK):
            conn.execute(statement, removable[start:start + CHUNK])
    return len(removable)


def _trash(conn: Connection, actor: Actor, import_id: int, back_to_trash: list[int],
           kept: set[int], dry_run: bool) -> tuple[int, int | None]:
    """The people the import added (and those it brought back from the trash), unless edited
    since, go to the trash as one batch; returns (how many, the deletion batch)."""
    added = and_(subscribers.c.source == IMPORT_SOURCE % import_id, subscribers.c.deleted_at.is_(None))
    # Edited since it added them: their row, or one of their memberships, changed after.
    edited = or_(subscribers.c.updated_at > subscribers.c.created_at, select(
        subscriber_lists.c.list_id).where(
            subscriber_lists.c.subscriber_id == subscribers.c.id,
            subscriber_lists.c.updated_at > subscribers.c.created_at).exists())
    kept.update(conn.execute(select(subscribers.c.id).where(added, edited)).scalars())
    target = or_(and_(added, ~edited), among(conn, subscribers.c.id, back_to_trash)) if back_to_trash \
        else and_(added, ~edited)
    if dry_run:
        return conn.execute(select(func.count()).select_from(subscribers).where(
            target, subscribers.c.deleted_at.is_(None))).scalar_one(), None
    if conn.execute(select(subscribers.c.id).where(target, subscribers.c.deleted_at.is_(None))
                    .limit(1)).first() is None:
        return 0, None
    done = delete_to_trash(conn, actor, where=target, description=f"undo of import #{import_id}")
    return done["count"], done["batch"]


def people(conn: Connection, ids: list[int]) -> list[dict]:
    """id and email of these people (the import's page names those an undo kept)."""
    if not ids:
        return []
    return [dict(r._mapping) for r in conn.execute(
        select(subscribers.c.id, subscribers.c.email).where(among(conn, subscribers.c.id, ids))
        .order_by(subscribers.c.id))]


def purge_changes(conn: Connection, days: int) -> int:
    """Forgets what imports finished more than `days` ago changed (they can no longer be
    undone); returns how many rows went."""
    old = select(imports.c.id).where(imports.c.finished_at < utcnow() - timedelta(days=days))
    return conn.execute(delete(import_changes).where(import_changes.c.import_id.in_(old))).rowcount
