"""Trash: deletions are batches (who, when, what); restore one, a selection or a batch with
memberships, fields and history intact; purge after `audience.trash_days`."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from altkraft_onprem import events
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from .models import deletion_batches, subscriber_lists, subscribers


def delete_to_trash(conn: Connection, actor: Actor, *, ids=None, list_id: int | None = None,
                    where=None, description: str = "") -> dict:
    """Moves subscribers to the trash: given ids, a list's members, or those matching `where`
    (a segment expression). Returns {"batch": id, "count": n}."""
    if ids is None and list_id is None and where is None:
        raise ServiceError("say what to delete", "ids")
    target = [subscribers.c.deleted_at.is_(None)]
    if ids is not None:
        ids = sorted({int(i) for i in ids})
        if not ids:
            raise ServiceError("nothing selected", "ids")
        target.append(subscribers.c.id.in_(ids))
    if list_id is not None:
        target.append(select(subscriber_lists.c.subscriber_id).where(
            subscriber_lists.c.list_id == list_id,
            subscriber_lists.c.subscriber_id == subscribers.c.id).exists())
    if where is not None:
        target.append(where)
    now = utcnow()
    batch = conn.execute(insert(deletion_batches).values(
        at=now, actor=actor.label[:320], description=description[:1000], count=0)
        .returning(deletion_batches.c.id)).scalar_one()
    count = conn.execute(update(subscribers).where(and_(*target))
                         .values(deleted_at=now, deleted_batch=batch)).rowcount
    if count == 0 and ids is not None:
        raise NotFound("no such subscriber (or already in the trash)", "ids")
    conn.execute(update(deletion_batches).where(deletion_batches.c.id == batch).values(count=count))
    if count and events.SUBSCRIBERS_DELETED.has_handlers:
        deleted = list(conn.execute(select(subscribers.c.id).where(
            subscribers.c.deleted_batch == batch).order_by(subscribers.c.id)).scalars())
        events.SUBSCRIBERS_DELETED.emit(conn, subscriber_ids=deleted, batch_id=batch)
    record(conn, actor, "subscriber.delete", "deletion_batch", batch, count=count,
           description=description, ids=ids[:100] if ids else None, list_id=list_id)
    return {"batch": batch, "count": count}


def restore(conn: Connection, actor: Actor, *, ids=None, batch: int | None = None) -> int:
    """Takes subscribers out of the trash (by ids or by batch); returns how many."""
    if not ids and batch is None:
        raise ServiceError("give ids or a batch", "ids")
    where = [subscribers.c.deleted_at.is_not(None)]
    if ids:
        where.append(subscribers.c.id.in_(sorted({int(i) for i in ids})))
    if batch is not None:
        if conn.execute(select(deletion_batches.c.id).where(deletion_batches.c.id == batch)).first() is None:
            raise NotFound("no such deletion batch", "batch")
        where.append(subscribers.c.deleted_batch == batch)
    restored = list(conn.execute(select(subscribers.c.id).where(*where).order_by(
        subscribers.c.id)).scalars()) if events.SUBSCRIBERS_RESTORED.has_handlers else []
    count = conn.execute(update(subscribers).where(*where)
                         .values(deleted_at=None, deleted_batch=None)).rowcount
    if restored:
        events.SUBSCRIBERS_RESTORED.emit(conn, subscriber_ids=restored)
    record(conn, actor, "subscriber.restore", "deletion_batch", batch or "", count=count,
           ids=sorted(ids)[:100] if ids else None)
    return count


def trash_items(conn: Connection, *, batch: int | None = None, limit: int = 100, offset: int = 0
                ) -> tuple[list[dict], int]:
    where = [subscribers.c.deleted_at.is_not(None)]
    if batch is not None:
        where.append(subscribers.c.deleted_batch == batch)
    total = conn.execute(select(func.count()).select_from(subscribers).where(*where)).scalar_one()
    rows = conn.execute(select(subscribers.c.id, subscribers.c.email, subscribers.c.first_name,
                               subscribers.c.last_name, subscribers.c.deleted_at,
                               subscribers.c.deleted_batch).where(*where)
                        .order_by(subscribers.c.deleted_at.desc(), subscribers.c.id)
                        .limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows], total


def batches(conn: Connection, limit: int = 100) -> list[dict]:
    """Deletion batches that still have people in the trash, newest first."""
    remaining = (select(subscribers.c.deleted_batch, func.count().label("remaining"))
                 .where(subscribers.c.deleted_at.is_not(None))
                 .group_by(subscribers.c.deleted_batch).subquery())
    query = (select(deletion_batches, remaining.c.remaining)
             .join(remaining, remaining.c.deleted_batch == deletion_batches.c.id)
             .order_by(deletion_batches.c.at.desc()).limit(limit))
    return [dict(r._mapping) for r in conn.execute(query)]


def purge(conn: Connection, days: int) -> int:
    """Erases subscribers in the trash longer than `days` (memberships, consents, activity and
    tracking data go with them); empty batches go too. Returns how many people were erased."""
    cutoff = utcnow() - timedelta(days=days)
    expired = (subscribers.c.deleted_at.is_not(None), subscribers.c.deleted_at < cutoff)
    expired_ids = list(conn.execute(select(subscribers.c.id).where(*expired)).scalars())
    if expired_ids:
        events.SUBSCRIBERS_ERASED.emit(conn, subscriber_ids=expired_ids)
    count = conn.execute(delete(subscribers).where(*expired)).rowcount
    conn.execute(delete(deletion_batches).where(
        deletion_batches.c.at < cutoff,
        ~select(subscribers.c.id).where(subscribers.c.deleted_batch == deletion_batches.c.id).exists()))
    return count


__all__ = ["delete_to_trash", "restore", "trash_items", "batches", "purge"]
