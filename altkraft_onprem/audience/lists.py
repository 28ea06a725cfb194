"""Lists: create, change, delete, live counts per membership status."""
from __future__ import annotations

import json
import re

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from .models import MEMBER_STATUSES, lists, subscriber_lists, subscribers

VISIBILITIES = ("public", "private")
OPTINS = ("single", "double")


def _clean(name=None, visibility=None, optin=None, tags=None, description=None) -> dict:
    values = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise ServiceError("a list needs a name of 1 to 200 characters", "name")
        values["name"] = name
    if visibility is not None:
        if visibility not in VISIBILITIES:
            raise ServiceError("visibility must be public or private", "visibility")
        values["visibility"] = visibility
    if optin is not None:
        if optin not in OPTINS:
            raise ServiceError("optin must be single or double", "optin")
        values["optin"] = optin
    if tags is not None:
        clean = sorted({str(t).strip()[:50] for t in tags if str(t).strip()})
        values["tags"] = json.dumps(clean, ensure_ascii=False)
    if description is not None:
        values["description"] = description[:5000]
    return values


def _name_taken(conn: Connection, name: str, except_id: int | None = None) -> bool:
    query = select(lists.c.id).where(lists.c.name == name)
    if except_id is not None:
        query = query.where(lists.c.id != except_id)
    return conn.execute(query).first() is not None


def create_list(conn: Connection, actor: Actor, name: str, *, optin: str = "single",
                visibility: str = "private", tags=(), description: str = "") -> int:
    values = _clean(name, visibility, optin, list(tags), description)
    if _name_taken(conn, values["name"]):
        raise Conflict("a list named %(name)s already exists", "name", name=repr(values['name']))
    now = utcnow()
    list_id = conn.execute(insert(lists).values(**values, form="{}", created_at=now, updated_at=now)
                           .returning(lists.c.id)).scalar_one()
    record(conn, actor, "list.create", "list", list_id, name=values["name"])
    return list_id


ARCHIVE_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def clean_archive_slug(conn: Connection, raw: str | None, list_id: int) -> str | None:
    """A list's archive address (/archive/SLUG): lower-case letters, digits and dashes, not
    another list's; empty or None: no public archive."""
    slug = (raw or "").strip().lower()
    if not slug:
        return None
    if not ARCHIVE_SLUG.match(slug):
        raise ServiceError("an archive address is 1 to 64 lower-case letters, digits and dashes "
                           "(not at either end)", "archive_slug")
    taken = conn.execute(select(lists.c.name).where(lists.c.archive_slug == slug,
                                                    lists.c.id != list_id)).scalar()
    if taken is not None:
        raise Conflict("the archive address %(slug)s belongs to the list %(name)s", "archive_slug",
                       slug=slug, name=taken)
    return slug


def update_list(conn: Connection, actor: Actor, list_id: int, **changes) -> None:
    """Changes the given fields; `archive_slug=None` (or empty) takes the list's public
    archive down."""
    get_list(conn, list_id, counts=False)
    values = _clean(**{k: v for k, v in changes.items() if k not in ("form", "archive_slug")})
    if "form" in changes and changes["form"] is not None:
        values["form"] = json.dumps(changes["form"], ensure_ascii=False)
    if "archive_slug" in changes:
        values["archive_slug"] = clean_archive_slug(conn, changes["archive_slug"], list_id)
    if "name" in values and _name_taken(conn, values["name"], list_id):
        raise Conflict("a list named %(name)s already exists", "name", name=repr(values['name']))
    if values:
        conn.execute(update(lists).where(lists.c.id == list_id).values(**values, updated_at=utcnow()))
        record(conn, actor, "list.update", "list", list_id, **{k: v for k, v in values.items()
                                                                   if k != "form"})


def delete_list(conn: Connection, actor: Actor, list_id: int) -> None:
    """Removes the list and its memberships; the subscribers stay."""
    found = get_list(conn, list_id, counts=False)
    conn.execute(delete(subscriber_lists).where(subscriber_lists.c.list_id == list_id))
    conn.execute(delete(lists).where(lists.c.id == list_id))
    record(conn, actor, "list.delete", "list", list_id, name=found["name"])


def _out(row, counts: dict | None) -> dict:
    item = dict(row._mapping)
    item["tags"] = json.loads(item["tags"] or "[]")
    item["form"] = json.loads(item["form"] or "{}")
    if counts is not None:
        item["counts"] = counts
    return item


def counts_by_list(conn: Connection, list_ids=None) -> dict[int, dict]:
    """Live member counts per list and status, people in the trash left out. Counted as all
    memberships (a covering index scan) minus those of people in the trash (usually few, found
    through the deleted_batch index) — a join over every membership is much slower."""
    every = select(subscriber_lists.c.list_id, subscriber_lists.c.status, func.count()).group_by(
        subscriber_lists.c.list_id, subscriber_lists.c.status)
    trashed = (select(subscriber_lists.c.list_id, subscriber_lists.c.status, func.count())
               .select_from(subscriber_lists.join(subscribers, and_(
                   subscribers.c.id == subscriber_lists.c.subscriber_id,
                   subscribers.c.deleted_batch.is_not(None),
                   subscribers.c.deleted_at.is_not(None))))
               .group_by(subscriber_lists.c.list_id, subscriber_lists.c.status))
    if list_ids is not None:
        every = every.where(subscriber_lists.c.list_id.in_(list(list_ids)))
        trashed = trashed.where(subscriber_lists.c.list_id.in_(list(list_ids)))
    result: dict[int, dict] = {}
    for list_id, status, count in conn.execute(every):
        result.setdefault(list_id, dict.fromkeys(MEMBER_STATUSES, 0))[status] = count
    for list_id, status, count in conn.execute(trashed):
        result[list_id][status] -= count
    return result


def get_list(conn: Connection, list_id: int, *, counts: bool = True) -> dict:
    row = conn.execute(select(lists).where(lists.c.id == list_id)).first()
    if row is None:
        raise NotFound("no such list")
    return _out(row, counts_by_list(conn, [list_id]).get(list_id, dict.fromkeys(MEMBER_STATUSES, 0))
                if counts else None)


def list_lists(conn: Connection, *, counts: bool = True, only=None) -> list[dict]:
    """Every list, by name; `only`: just these ids (a role limited to some lists)."""
    all_counts = counts_by_list(conn, only) if counts else {}
    query = select(lists).order_by(lists.c.name)
    if only is not None:
        query = query.where(lists.c.id.in_(sorted(only)))
    return [_out(r, all_counts.get(r.id, dict.fromkeys(MEMBER_STATUSES, 0)) if counts else None)
            for r in conn.execute(query)]


def names(conn: Connection) -> dict[int, str]:
    """{id: name} of every list, by name (extensions.LIST_NAMES)."""
    return dict(conn.execute(select(lists.c.id, lists.c.name).order_by(lists.c.name)).all())


def lists_of_list(conn: Connection, list_id: int) -> tuple[set[int], str]:
    """For access.scope: a list is its own."""
    return {list_id}, "all"


def lists_of_subscriber(conn: Connection, subscriber_id: int) -> tuple[set[int], str]:
    """For access.scope: a person is seen through any one of their lists."""
    ids = conn.execute(select(subscriber_lists.c.list_id)
                       .where(subscriber_lists.c.subscriber_id == subscriber_id)).scalars()
    return set(ids), "any"


def by_archive_slug(conn: Connection, slug: str) -> dict | None:
    """The list whose public archive is /archive/SLUG (None: no such archive)."""
    row = conn.execute(select(lists.c.id, lists.c.name, lists.c.description).where(
        lists.c.archive_slug == slug.lower())).first()
    return dict(row._mapping) if row is not None else None


def list_id_by_name(conn: Connection, name: str) -> int:
    found = conn.execute(select(lists.c.id).where(lists.c.name == name)).scalar()
    if found is None:
        raise NotFound("no list named %(name)s", "list", name=repr(name))
    return found


def existing_list_ids(conn: Connection, list_ids) -> list[int]:
    wanted = sorted({int(i) for i in list_ids})
    found = set(conn.execute(select(lists.c.id).where(lists.c.id.in_(wanted))).scalars())
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound("no such list: %(ids)s", "lists", ids=", ".join(map(str, missing)))
    return wanted
