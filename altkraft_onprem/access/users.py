"""Users: accounts, their passwords and role, and the actor a signed-in user acts as."""
from __future__ import annotations

import json
import secrets
from typing import Any

from argon2 import PasswordHasher
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, and_, delete, func, insert, select, update

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from .audit import record
from .models import Actor, roles, user_sessions, users
from .roles import get_role, role_id_by_name, scope_of

password_hasher = PasswordHasher()
MIN_PASSWORD = 10


def normalise_email(email: str, field: str = "email") -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ServiceError("%(email)s is not a valid email address: %(exc)s", field, email=repr(email), exc=exc) from None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ServiceError("a password needs at least %(min_password)s characters", "password", min_password=MIN_PASSWORD)
    if len(password) > 1024:
        raise ServiceError("a password may have at most 1024 characters", "password")
    return password_hasher.hash(password)


def _public_user(row) -> dict:
    user = dict(row)
    for secret in ("password_hash", "auth_stamp", "totp_secret", "totp_pending", "totp_last_step"):
        user.pop(secret, None)
    user["two_factor"] = user.pop("totp_enabled_at", None) is not None
    return user


def list_users(conn: Connection) -> list[dict]:
    query = (select(users, roles.c.name.label("role")).join(roles, roles.c.id == users.c.role_id)
             .order_by(users.c.id))
    return [_public_user(r) for r in conn.execute(query).mappings()]


def emails_with_permission(conn: Connection, permission: str) -> list[str]:
    """Addresses of the active users whose role holds `permission` (who a notice goes to)."""
    query = (select(users.c.email, roles.c.permissions).join(roles, roles.c.id == users.c.role_id)
             .where(users.c.is_active.is_(True)).order_by(users.c.id))
    return [row.email for row in conn.execute(query) if permission in json.loads(row.permissions)]


def get_user(conn: Connection, user_id: int) -> dict:
    query = (select(users, roles.c.name.label("role")).join(roles, roles.c.id == users.c.role_id)
             .where(users.c.id == user_id))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound("user %(user_id)s does not exist", "user_id", user_id=user_id)
    return _public_user(row)


def user_id_by_email(conn: Connection, email: str) -> int:
    user_id = conn.execute(select(users.c.id).where(users.c.email == email.strip().lower())).scalar()
    if user_id is None:
        raise NotFound("no user with email %(email)s", "email", email=repr(email))
    return user_id


def create_user(conn: Connection, actor: Actor, email: str, password: str, role_id: int,
                name: str = "", locale: str | None = None) -> int:
    email = normalise_email(email)
    get_role(conn, role_id)
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Conflict("a user with email %(email)s exists already", "email", email=email)
    user_id = conn.execute(insert(users).values(
        email=email, name=name.strip(), password_hash=hash_password(password), role_id=role_id,
        locale=locale, is_active=True, auth_stamp=secrets.token_hex(16), created_at=utcnow(),
    )).inserted_primary_key[0]
    record(conn, actor, "user.create", "user", user_id, email=email, role_id=role_id)
    return user_id


def update_user(conn: Connection, actor: Actor, user_id: int, *, name: str | None = None,
                role_id: int | None = None, locale: str | None = None,
                is_active: bool | None = None) -> None:
    user = get_user(conn, user_id)
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = name.strip()
    if role_id is not None and role_id != user["role_id"]:
        get_role(conn, role_id)
        _keep_an_administrator(conn, user_id)
        values["role_id"] = role_id
    if locale is not None:
        if locale not in {"en", "ru"}:
            raise ServiceError("unknown language %(locale)s (en or ru)", "locale", locale=repr(locale))
        values["locale"] = locale
    if is_active is not None and is_active != user["is_active"]:
        if not is_active:
            _keep_an_administrator(conn, user_id)
            conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
        values["is_active"] = is_active
    if values:
        conn.execute(update(users).where(users.c.id == user_id).values(**values))
        record(conn, actor, "user.update", "user", user_id, **values)


def _keep_an_administrator(conn: Connection, user_id: int) -> None:
    admin_id = role_id_by_name(conn, "Administrator")
    others = conn.execute(select(func.count()).select_from(users).where(and_(
        users.c.role_id == admin_id, users.c.is_active.is_(True), users.c.id != user_id))).scalar()
    is_admin = conn.execute(select(users.c.role_id).where(users.c.id == user_id)).scalar() == admin_id
    if is_admin and not others:
        raise Conflict("this is the last active Administrator; make another one first", "role_id")


def set_password(conn: Connection, actor: Actor, user_id: int, new_password: str) -> None:
    """New password; every signed-in session of that user ends (the auth stamp changes). API
    tokens stay: they belong to integrations, which a password change must not break; revoking
    them is a separate, deliberate step."""
    get_user(conn, user_id)
    conn.execute(update(users).where(users.c.id == user_id).values(
        password_hash=hash_password(new_password), auth_stamp=secrets.token_hex(16)))
    conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
    record(conn, actor, "user.password", "user", user_id)


def actor_for_user(conn: Connection, user_id: int, *, ip: str = "", token_id: int | None = None) -> Actor:
    row = conn.execute(
        select(users.c.id, users.c.email, users.c.locale, users.c.totp_enabled_at, roles.c.name,
               roles.c.permissions, roles.c.require_two_factor, roles.c.list_scope)
        .join(roles, roles.c.id == users.c.role_id).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound("user %(user_id)s does not exist", "user_id", user_id=user_id)
    scope = scope_of(row.list_scope)
    return Actor(user_id=row.id, label=row.email, permissions=frozenset(json.loads(row.permissions)),
                 token_id=token_id, ip=ip, role=row.name, locale=row.locale,
                 must_enrol=bool(row.require_two_factor) and row.totp_enabled_at is None,
                 lists=None if scope is None else frozenset(scope))
