"""Roles: the built-in ones the code defines and the ones administrators make."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, Forbidden, NotFound, ServiceError

from .audit import record
from .models import BUILTIN_ROLES, PERMISSIONS, Actor, roles, users


def sync_builtin_roles(conn: Connection) -> None:
    """Make the built-in roles exist with the permission sets the code defines."""
    existing = {r.name: r for r in conn.execute(select(roles.c.id, roles.c.name))}
    for name, perms in BUILTIN_ROLES.items():
        values = {"permissions": json.dumps(sorted(perms)), "builtin": True}
        if name in existing:
            conn.execute(update(roles).where(roles.c.id == existing[name].id).values(**values))
        else:
            conn.execute(insert(roles).values(name=name, description="", created_at=utcnow(), **values))


def list_roles(conn: Connection) -> list[dict]:
    counts = dict(conn.execute(select(users.c.role_id, func.count()).group_by(users.c.role_id)).all())
    out = []
    for row in conn.execute(select(roles).order_by(roles.c.builtin.desc(), roles.c.id)).mappings():
        role = _out(row)
        role["users"] = counts.get(role["id"], 0)
        out.append(role)
    return out


def _out(row) -> dict:
    role = dict(row)
    role["permissions"] = sorted(json.loads(role["permissions"]))
    role["lists"] = scope_of(role.pop("list_scope"))
    return role


def scope_of(stored: str | None) -> list[int] | None:
    """A role's list scope as stored (JSON text or NULL) -> list ids, or None for every list."""
    return None if stored is None else sorted(json.loads(stored))


def _check_lists(list_ids: Iterable[int] | None) -> str | None:
    if list_ids is None:
        return None
    ids = sorted(set(list_ids))
    if not ids:
        raise ServiceError("a role limited to lists needs at least one list (or no limit at all)", "lists")
    if any(not isinstance(i, int) or isinstance(i, bool) or i < 1 for i in ids):
        raise ServiceError("list ids are whole numbers from 1", "lists")
    return json.dumps(ids)


def get_role(conn: Connection, role_id: int) -> dict:
    row = conn.execute(select(roles).where(roles.c.id == role_id)).mappings().first()
    if row is None:
        raise NotFound("role %(role_id)s does not exist", "role_id", role_id=role_id)
    return _out(row)


def role_id_by_name(conn: Connection, name: str) -> int:
    role_id = conn.execute(select(roles.c.id).where(roles.c.name == name)).scalar()
    if role_id is None:
        known = ", ".join(r["name"] for r in list_roles(conn))
        raise NotFound("no role named %(name)s (known: %(known)s)", "role", name=repr(name), known=known)
    return role_id


def _check_permissions(permissions: Iterable[str]) -> list[str]:
    perms = sorted(set(permissions))
    unknown = [p for p in perms if p not in PERMISSIONS]
    if unknown:
        raise ServiceError("unknown permission(s): %(unknown)s", "permissions", unknown=', '.join(unknown))
    return perms


def create_role(conn: Connection, actor: Actor, name: str, permissions: Iterable[str],
                description: str = "", lists: Iterable[int] | None = None) -> int:
    """A custom role; `lists`: the only lists its users see and send to (None: every list)."""
    name = name.strip()
    if not name:
        raise ServiceError("a role needs a name", "name")
    perms = _check_permissions(permissions)
    scope = _check_lists(lists)
    _unique_role_name(conn, name)
    role_id = conn.execute(insert(roles).values(
        name=name, description=description, builtin=False, permissions=json.dumps(perms),
        list_scope=scope, created_at=utcnow())).inserted_primary_key[0]
    record(conn, actor, "role.create", "role", role_id, name=name, permissions=perms,
           lists=scope_of(scope))
    return role_id


def _unique_role_name(conn: Connection, name: str) -> None:
    # Compared in Python: SQLite's lower() folds ASCII only. Roles are few.
    if any(existing.casefold() == name.casefold() for existing in conn.execute(select(roles.c.name)).scalars()):
        raise Conflict("a role named %(name)s exists already", "name", name=repr(name))


UNCHANGED = object()


def update_role(conn: Connection, actor: Actor, role_id: int, *, name: str | None = None,
                permissions: Iterable[str] | None = None, description: str | None = None,
                lists: Iterable[int] | None | object = UNCHANGED) -> None:
    """Changes a custom role; `lists=None` lifts its list limit, a list of ids sets it."""
    role = get_role(conn, role_id)
    if role["builtin"]:
        raise Forbidden("the built-in role %(name)s cannot be changed", "role_id", name=role['name'])
    values: dict[str, Any] = {}
    if name is not None and name.strip() != role["name"]:
        name = name.strip()
        if not name:
            raise ServiceError("a role needs a name", "name")
        _unique_role_name(conn, name)
        values["name"] = name
    if permissions is not None:
        values["permissions"] = json.dumps(_check_permissions(permissions))
    if description is not None:
        values["description"] = description
    if lists is not UNCHANGED:
        scope = _check_lists(lists)
        if scope_of(scope) != role["lists"]:
            values["list_scope"] = scope
    if not values:
        return
    conn.execute(update(roles).where(roles.c.id == role_id).values(**values))
    record(conn, actor, "role.update", "role", role_id, **values)


def delete_role(conn: Connection, actor: Actor, role_id: int) -> None:
    role = get_role(conn, role_id)
    if role["builtin"]:
        raise Forbidden("the built-in role %(name)s cannot be deleted", "role_id", name=role['name'])
    if conn.execute(select(users.c.id).where(users.c.role_id == role_id)).first():
        raise Conflict("role %(name)s still has users; give them another role first", "role_id", name=role['name'])
    conn.execute(delete(roles).where(roles.c.id == role_id))
    record(conn, actor, "role.delete", "role", role_id, name=role["name"])
