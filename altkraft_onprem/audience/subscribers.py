"""Subscribers: one person per normalised email, typed standard fields, custom fields,
memberships with a status per list, a global state."""
from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update

from altkraft_onprem import db, events
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.scope import require_lists
from altkraft_onprem.access.service import record, record_many
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from . import fields as fields_service
from .activity import log_activities, log_activity, record_consent
from .lists import existing_list_ids
from .models import (
    MEMBER_STATUSES,
    STANDARD_FIELDS,
    SUBSCRIBER_STATES,
    FieldError,
    clean_custom,
    clean_standard,
    email_domain,
    lists,
    subscriber_lists,
    subscribers,
)
from .segments import on_lists

OUT_COLUMNS = ("id", *STANDARD_FIELDS, "state", "custom", "source", "created_at", "updated_at",
               "deleted_at", "deleted_batch")


def clean_values(conn: Connection, data: dict, *, partial: bool = False,
                 definitions: dict | None = None) -> dict:
    """Standard fields typed by clean_standard, `custom` by each field's definition.
    Raises ServiceError naming the first bad field."""
    values: dict = {}
    for name in STANDARD_FIELDS:
        if name not in data:
            continue
        try:
            values[name] = clean_standard(name, data[name])
        except FieldError as exc:
            raise ServiceError.like(exc) from None
    if not partial and "email" not in values:
        raise ServiceError("an email address is required", "email")
    custom = data.get("custom")
    if custom:
        if not isinstance(custom, dict):
            raise ServiceError("custom fields must be an object", "custom")
        defs = definitions if definitions is not None else fields_service.definitions(conn)
        clean = {}
        for key, raw in custom.items():
            field = defs.get(key)
            if field is None:
                raise NotFound("unknown custom field %(key)s: define it first", f"custom.{key}", key=repr(key))
            try:
                clean[key] = clean_custom(field["type"], raw, field["choices"], name=f"custom.{key}")
            except FieldError as exc:
                raise ServiceError.like(exc) from None
        values["custom"] = clean
    return values


def _by_email(conn: Connection, email: str):
    return conn.execute(select(subscribers).where(subscribers.c.email == email)).first()


def find_by_email(conn: Connection, raw_email: str) -> dict | None:
    try:
        email = clean_standard("email", raw_email)
    except FieldError:
        return None
    row = _by_email(conn, email)
    return get_subscriber(conn, row.id) if row is not None and row.deleted_at is None else None


def create_subscriber(conn: Connection, actor: Actor, data: dict, *, list_ids=(),
                      status: str = "confirmed", source: str = "manual") -> int:
    require_lists(actor, list_ids, "lists", at_least_one=True)
    values = clean_values(conn, data)
    existing = _by_email(conn, values["email"])
    if existing is not None:
        if existing.deleted_at:
            raise Conflict("%(email)s is already a subscriber (in the trash: restore it instead)",
                           "email", email=values["email"])
        raise Conflict("%(email)s is already a subscriber", "email", email=values["email"])
    now = utcnow()
    values.setdefault("custom", {})
    subscriber_id = conn.execute(insert(subscribers).values(
        **values, email_domain=email_domain(values["email"]), state="active", source=source[:100],
        created_at=now, updated_at=now).returning(subscribers.c.id)).scalar_one()
    events.SUBSCRIBER_CREATED.emit(conn, subscriber_id=subscriber_id, source=source[:100])
    for list_id in existing_list_ids(conn, list_ids):
        set_membership(conn, subscriber_id, list_id, status)
    log_activity(conn, subscriber_id, "created", source=source, by=actor.label)
    if source != "form":              # public sign-ups record their own consent (optin.py)
        record_consent(conn, subscriber_id, None, source, ip=actor.ip,
                       form=f"added by {actor.label}")
    record(conn, actor, "subscriber.create", "subscriber", subscriber_id)
    return subscriber_id


def update_subscriber(conn: Connection, actor: Actor, subscriber_id: int, data: dict) -> list[str]:
    """Changes the given fields; custom fields merge into the existing ones (None removes one).
    Returns the names of the fields that changed."""
    current = get_subscriber(conn, subscriber_id)
    values = clean_values(conn, data, partial=True)
    if "email" in values and values["email"] != current["email"]:
        if _by_email(conn, values["email"]) is not None:
            raise Conflict("%(email)s is already a subscriber", "email", email=values['email'])
        values["email_domain"] = email_domain(values["email"])
    if "custom" in values:
        merged = dict(current["custom"])
        for key, value in values["custom"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        values["custom"] = merged
    changed = [k for k, v in values.items() if k != "email_domain" and current.get(k) != v]
    if changed:
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                     .values(**values, updated_at=utcnow()))
        log_activity(conn, subscriber_id, "updated", fields=changed, by=actor.label)
        events.SUBSCRIBER_UPDATED.emit(conn, subscriber_id=subscriber_id,
                                       changes=field_changes(current, values, changed))
        record(conn, actor, "subscriber.update", "subscriber", subscriber_id, fields=changed)
    return changed


def update_many(conn: Connection, actor: Actor, subscriber_ids, data: dict) -> dict[int, list[str]]:
    """`update_subscriber` with the same data for many people (not the email: that is one
    person's): one read and one write per thousand, each changed person's activity, event and
    audit entry. Returns the changed fields of each person changed (the trash is left alone)."""
    if "email" in data:
        raise ServiceError("an email address is changed one person at a time", "email")
    values = clean_values(conn, data, partial=True)
    changed: dict[int, list[str]] = {}
    for chunk in db.chunked(sorted(set(subscriber_ids)), 1000):
        rows = []
        for row in conn.execute(select(subscribers.c.id, *[subscribers.c[name] for name in values]).where(
                db.lookup(conn, subscribers.c.id, chunk, subscribers.c.deleted_at.is_(None)))).mappings():
            current, new = dict(row), dict(values)
            if "custom" in values:
                new["custom"] = {k: v for k, v in {**(current["custom"] or {}), **values["custom"]}.items()
                                 if v is not None}
            names = [k for k, v in new.items() if current.get(k) != v]
            if names:
                rows.append((row["id"], new, names, current))
                changed[row["id"]] = names
        _write_updates(conn, actor, rows)
    return changed


def _write_updates(conn: Connection, actor: Actor, rows: list[tuple[int, dict, list, dict]]) -> None:
    """(id, new values, changed names, current values) each."""
    if not rows:
        return
    now = utcnow()
    if "custom" in rows[0][1]:          # merged per person
        conn.execute(update(subscribers).where(subscribers.c.id == bindparam("b_id")).values(
            {**{name: bindparam(f"b_{name}") for name in rows[0][1]}, "updated_at": now}),
            [{"b_id": sid, **{f"b_{k}": v for k, v in new.items()}} for sid, new, _, _ in rows])
    else:
        conn.execute(update(subscribers).where(db.among(conn, subscribers.c.id, [row[0] for row in rows]))
                     .values(**rows[0][1], updated_at=now))
    # The same details object for the same changed fields: its JSON is made once.
    shown: dict[tuple, tuple[dict, dict]] = {}
    for _, _, names, _ in rows:
        if tuple(names) not in shown:
            shown[tuple(names)] = ({"fields": names, "by": actor.label}, {"fields": names})
    log_activities(conn, "updated", [(sid, shown[tuple(names)][0]) for sid, _, names, _ in rows])
    if events.SUBSCRIBER_UPDATED.wanted(conn):     # nobody listens: no payload per person
        for sid, new, names, current in rows:
            events.SUBSCRIBER_UPDATED.emit(conn, subscriber_id=sid,
                                           changes=field_changes(current, new, names))
    record_many(conn, actor, "subscriber.update", "subscriber",
                [(sid, shown[tuple(names)][1]) for sid, _, names, _ in rows])


def _plain(value):
    return value.isoformat() if isinstance(value, date) else value


def field_changes(current: dict, values: dict, changed: list[str]) -> dict:
    """{field: {"from", "to"}} of an update, custom fields as custom.KEY (the event's form)."""
    out = {}
    for name in changed:
        if name != "custom":
            out[name] = {"from": _plain(current.get(name)), "to": _plain(values[name])}
            continue
        before, after = current.get("custom") or {}, values["custom"]
        for key in sorted(before.keys() | after.keys()):
            if before.get(key) != after.get(key):
                out[f"custom.{key}"] = {"from": before.get(key), "to": after.get(key)}
    return out


def set_state(conn: Connection, actor: Actor, subscriber_id: int, state: str) -> None:
    if state not in SUBSCRIBER_STATES:
        raise ServiceError("state must be one of %(subscriber_states)s", "state", subscriber_states=', '.join(SUBSCRIBER_STATES))
    get_subscriber(conn, subscriber_id)
    conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                 .values(state=state, updated_at=utcnow()))
    log_activity(conn, subscriber_id, "state", state=state, by=actor.label)
    record(conn, actor, "subscriber.state", "subscriber", subscriber_id, state=state)


def set_membership(conn: Connection, subscriber_id: int, list_id: int, status: str) -> str | None:
    """Adds or changes one membership; returns the previous status (None if new)."""
    if status not in MEMBER_STATUSES:
        raise ServiceError("status must be one of %(member_statuses)s", "status", member_statuses=', '.join(MEMBER_STATUSES))
    now = utcnow()
    previous = conn.execute(select(subscriber_lists.c.status).where(
        subscriber_lists.c.list_id == list_id,
        subscriber_lists.c.subscriber_id == subscriber_id)).scalar()
    stamps = {"confirmed_at": now} if status == "confirmed" else (
        {"unsubscribed_at": now} if status == "unsubscribed" else {})
    if previous is None:
        conn.execute(insert(subscriber_lists).values(
            list_id=list_id, subscriber_id=subscriber_id, status=status, created_at=now,
            updated_at=now, **stamps))
    elif previous != status:
        conn.execute(update(subscriber_lists).where(
            subscriber_lists.c.list_id == list_id,
            subscriber_lists.c.subscriber_id == subscriber_id).values(
            status=status, updated_at=now, **stamps))
    if previous != status:
        log_activity(conn, subscriber_id, status if previous is None else f"list_{status}",
                     list_id=list_id, previous=previous)
        _emit_membership(conn, subscriber_id, list_id, status, previous)
    return previous


def _emit_membership(conn: Connection, subscriber_id: int, list_id: int, status: str,
                     previous: str | None) -> None:
    if previous is None and status != "unsubscribed":
        events.SUBSCRIPTION_JOINED.emit(conn, subscriber_id=subscriber_id, list_id=list_id,
                                        status=status)
    elif status == "confirmed" and previous == "unconfirmed":
        events.SUBSCRIPTION_CONFIRMED.emit(conn, subscriber_id=subscriber_id, list_id=list_id)
    elif status == "confirmed":         # back on a list they had left
        events.SUBSCRIPTION_JOINED.emit(conn, subscriber_id=subscriber_id, list_id=list_id,
                                        status=status)
    if status == "unsubscribed":
        events.SUBSCRIPTION_UNSUBSCRIBED.emit(conn, subscriber_id=subscriber_id, list_id=list_id)


def change_memberships(conn: Connection, actor: Actor, subscriber_id: int, *, add=(),
                       status: str = "confirmed", remove=()) -> None:
    require_lists(actor, [*add, *map(int, remove)], "lists")
    get_subscriber(conn, subscriber_id)
    for list_id in existing_list_ids(conn, add):
        set_membership(conn, subscriber_id, list_id, status)
    for list_id in remove:
        conn.execute(delete(subscriber_lists).where(
            subscriber_lists.c.list_id == int(list_id),
            subscriber_lists.c.subscriber_id == subscriber_id))
        log_activity(conn, subscriber_id, "list_removed", list_id=int(list_id), by=actor.label)
    record(conn, actor, "subscriber.lists", "subscriber", subscriber_id, add=list(add),
           remove=list(remove), status=status)


def memberships(conn: Connection, subscriber_id: int) -> list[dict]:
    query = (select(subscriber_lists, lists.c.name)
             .join(lists, lists.c.id == subscriber_lists.c.list_id)
             .where(subscriber_lists.c.subscriber_id == subscriber_id).order_by(lists.c.name))
    return [dict(r._mapping) for r in conn.execute(query)]


def get_subscriber(conn: Connection, subscriber_id: int, *, include_deleted: bool = False) -> dict:
    row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    if row is None or (row.deleted_at is not None and not include_deleted):
        raise NotFound("no such subscriber")
    item = {k: getattr(row, k) for k in OUT_COLUMNS}
    item["custom"] = item["custom"] or {}
    item["lists"] = memberships(conn, subscriber_id)
    return item


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_query(conn: Connection, *, search: str = "", list_id: int | None = None,
                 status: str | None = None, state: str | None = None, segment=None, only=None):
    """The WHERE of the subscriber browser (without trash); `only`: people on at least one of
    these lists (a role limited to some lists)."""
    where = [subscribers.c.deleted_at.is_(None)]
    if only is not None:
        where.append(on_lists(only))
    if search:
        pattern = f"%{_escape_like(search.strip())}%"
        where.append(or_(subscribers.c.email.ilike(pattern, escape="\\"),
                         subscribers.c.first_name.ilike(pattern, escape="\\"),
                         subscribers.c.last_name.ilike(pattern, escape="\\")))
    if list_id is not None:
        member = select(subscriber_lists.c.subscriber_id).where(
            subscriber_lists.c.list_id == list_id,
            subscriber_lists.c.subscriber_id == subscribers.c.id)
        if status:
            member = member.where(subscriber_lists.c.status == status)
        where.append(member.exists())
    if state:
        where.append(subscribers.c.state == state)
    if segment is not None:
        where.append(segment)
    return and_(*where)


def browse(conn: Connection, *, limit: int = 50, offset: int = 0, **filters) -> tuple[list[dict], int]:
    where = search_query(conn, **filters)
    total = conn.execute(select(func.count()).select_from(subscribers).where(where)).scalar_one()
    rows = conn.execute(select(subscribers).where(where).order_by(subscribers.c.id.desc())
                        .limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows], total


def render_context(conn: Connection, subscriber_ids) -> dict[int, dict]:
    """Per id: the variables a message sees as `subscriber` (standard fields, custom, dates)."""
    ids = list(subscriber_ids)
    result: dict[int, dict] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for row in conn.execute(select(subscribers).where(subscribers.c.id.in_(chunk))):
            item = {"id": row.id}
            for name in STANDARD_FIELDS:
                value = getattr(row, name)
                item[name] = value.isoformat() if isinstance(value, date) else (value or "")
            item["custom"] = dict(row.custom or {})
            item["created_at"] = row.created_at.isoformat()
            result[row.id] = item
    return result

