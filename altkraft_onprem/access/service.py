"""Access operations: the only code that writes users, roles, sessions, tokens, audit log."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, and_, delete, func, insert, select, update

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, Forbidden, NotFound, ServiceError, TooManyRequests

from .models import (
    BUILTIN_ROLES,
    PERMISSIONS,
    Actor,
    api_tokens,
    app_state,
    audit_log,
    login_attempts,
    roles,
    user_sessions,
    users,
)

_hasher = PasswordHasher()
MIN_PASSWORD = 10
TOKEN_PREFIX = "ak_"
SESSION_TOUCH_SECONDS = 60


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- audit ---------------------------------------------------------------------------------

def record(conn: Connection, actor: Actor, action: str, target_type: str = "",
           target_id: Any = "", **details: Any) -> None:
    """Append one audit entry: who (actor), what (action + target), when, from where."""
    conn.execute(insert(audit_log).values(
        at=utcnow(), actor_user_id=actor.user_id, actor_token_id=actor.token_id,
        actor=actor.label, ip=actor.ip, action=action, target_type=target_type,
        target_id=str(target_id), details=json.dumps(details, default=str, ensure_ascii=False)))


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
        raise ServiceError(f"{moment.isoformat()} is outside the years 1-9999 in UTC", "since") from None


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


# --- roles ---------------------------------------------------------------------------------

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
        role = dict(row)
        role["permissions"] = sorted(json.loads(role["permissions"]))
        role["users"] = counts.get(role["id"], 0)
        out.append(role)
    return out


def get_role(conn: Connection, role_id: int) -> dict:
    row = conn.execute(select(roles).where(roles.c.id == role_id)).mappings().first()
    if row is None:
        raise NotFound(f"role {role_id} does not exist", "role_id")
    role = dict(row)
    role["permissions"] = sorted(json.loads(role["permissions"]))
    return role


def role_id_by_name(conn: Connection, name: str) -> int:
    role_id = conn.execute(select(roles.c.id).where(roles.c.name == name)).scalar()
    if role_id is None:
        known = ", ".join(r["name"] for r in list_roles(conn))
        raise ServiceError(f"no role named {name!r} (known: {known})", "role")
    return role_id


def _check_permissions(permissions: Iterable[str]) -> list[str]:
    perms = sorted(set(permissions))
    unknown = [p for p in perms if p not in PERMISSIONS]
    if unknown:
        raise ServiceError(f"unknown permission(s): {', '.join(unknown)}", "permissions")
    return perms


def create_role(conn: Connection, actor: Actor, name: str, permissions: Iterable[str],
                description: str = "") -> int:
    name = name.strip()
    if not name:
        raise ServiceError("a role needs a name", "name")
    perms = _check_permissions(permissions)
    _unique_role_name(conn, name)
    role_id = conn.execute(insert(roles).values(
        name=name, description=description, builtin=False, permissions=json.dumps(perms),
        created_at=utcnow())).inserted_primary_key[0]
    record(conn, actor, "role.create", "role", role_id, name=name, permissions=perms)
    return role_id


def _unique_role_name(conn: Connection, name: str) -> None:
    # Compared in Python: SQLite's lower() folds ASCII only. Roles are few.
    if any(existing.casefold() == name.casefold() for existing in conn.execute(select(roles.c.name)).scalars()):
        raise Conflict(f"a role named {name!r} exists already", "name")


def update_role(conn: Connection, actor: Actor, role_id: int, *, name: str | None = None,
                permissions: Iterable[str] | None = None, description: str | None = None) -> None:
    role = get_role(conn, role_id)
    if role["builtin"]:
        raise Forbidden(f"the built-in role {role['name']} cannot be changed", "role_id")
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
    if not values:
        return
    conn.execute(update(roles).where(roles.c.id == role_id).values(**values))
    record(conn, actor, "role.update", "role", role_id, **values)


def delete_role(conn: Connection, actor: Actor, role_id: int) -> None:
    role = get_role(conn, role_id)
    if role["builtin"]:
        raise Forbidden(f"the built-in role {role['name']} cannot be deleted", "role_id")
    if conn.execute(select(users.c.id).where(users.c.role_id == role_id)).first():
        raise Conflict(f"role {role['name']} still has users; give them another role first", "role_id")
    conn.execute(delete(roles).where(roles.c.id == role_id))
    record(conn, actor, "role.delete", "role", role_id, name=role["name"])


# --- users ---------------------------------------------------------------------------------

def normalise_email(email: str, field: str = "email") -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ServiceError(f"{email!r} is not a valid email address: {exc}", field) from None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ServiceError(f"a password needs at least {MIN_PASSWORD} characters", "password")
    if len(password) > 1024:
        raise ServiceError("a password may have at most 1024 characters", "password")
    return _hasher.hash(password)


def _public_user(row) -> dict:
    user = dict(row)
    user.pop("password_hash", None)
    user.pop("auth_stamp", None)
    return user


def list_users(conn: Connection) -> list[dict]:
    query = (select(users, roles.c.name.label("role")).join(roles, roles.c.id == users.c.role_id)
             .order_by(users.c.id))
    return [_public_user(r) for r in conn.execute(query).mappings()]


def get_user(conn: Connection, user_id: int) -> dict:
    query = (select(users, roles.c.name.label("role")).join(roles, roles.c.id == users.c.role_id)
             .where(users.c.id == user_id))
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"user {user_id} does not exist", "user_id")
    return _public_user(row)


def user_id_by_email(conn: Connection, email: str) -> int:
    user_id = conn.execute(select(users.c.id).where(users.c.email == email.strip().lower())).scalar()
    if user_id is None:
        raise NotFound(f"no user with email {email!r}", "email")
    return user_id


def create_user(conn: Connection, actor: Actor, email: str, password: str, role_id: int,
                name: str = "", locale: str | None = None) -> int:
    email = normalise_email(email)
    get_role(conn, role_id)
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(f"a user with email {email} exists already", "email")
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
            raise ServiceError(f"unknown language {locale!r} (en or ru)", "locale")
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
    """New password; every session of that user ends (the auth stamp changes)."""
    get_user(conn, user_id)
    conn.execute(update(users).where(users.c.id == user_id).values(
        password_hash=hash_password(new_password), auth_stamp=secrets.token_hex(16)))
    conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
    record(conn, actor, "user.password", "user", user_id)


def actor_for_user(conn: Connection, user_id: int, *, ip: str = "", token_id: int | None = None) -> Actor:
    row = conn.execute(
        select(users.c.id, users.c.email, users.c.locale, roles.c.name, roles.c.permissions)
        .join(roles, roles.c.id == users.c.role_id).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} does not exist", "user_id")
    return Actor(user_id=row.id, label=row.email, permissions=frozenset(json.loads(row.permissions)),
                 token_id=token_id, ip=ip, role=row.name, locale=row.locale)


# --- login, throttling, sessions -----------------------------------------------------------

def authenticate(conn: Connection, email: str, password: str, ip: str, *,
                 max_failures: int, lockout: timedelta) -> int | None:
    """The user id for good credentials, None for bad ones (the failure is recorded: the
    caller commits it); TooManyRequests after too many recent failures."""
    email = email.strip().lower()[:320]
    since = utcnow() - lockout
    recent = select(func.count()).select_from(login_attempts).where(
        login_attempts.c.at >= since, login_attempts.c.success.is_(False))
    by_email = conn.execute(recent.where(login_attempts.c.email == email)).scalar()
    by_ip = conn.execute(recent.where(login_attempts.c.ip == ip)).scalar()
    if by_email >= max_failures or by_ip >= max_failures * 4:
        raise TooManyRequests("too many failed logins; try again later")
    row = conn.execute(select(users.c.id, users.c.password_hash, users.c.is_active)
                       .where(users.c.email == email)).first()
    ok = False
    if row is not None and row.is_active:
        try:
            ok = _hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher.hash(password)  # same work for unknown addresses: no timing oracle
    conn.execute(insert(login_attempts).values(at=utcnow(), email=email, ip=ip, success=ok))
    if not ok:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        conn.execute(update(users).where(users.c.id == row.id).values(password_hash=_hasher.hash(password)))
    conn.execute(update(users).where(users.c.id == row.id).values(last_login_at=utcnow()))
    return row.id


def open_session(conn: Connection, user_id: int, ip: str, user_agent: str) -> str:
    """A new session; returns the secret id for the cookie (only its hash is stored)."""
    session_id = secrets.token_urlsafe(32)
    stamp = conn.execute(select(users.c.auth_stamp).where(users.c.id == user_id)).scalar_one()
    now = utcnow()
    conn.execute(insert(user_sessions).values(
        id_hash=_sha256(session_id), user_id=user_id, auth_stamp=stamp, created_at=now,
        last_seen_at=now, ip=ip[:64], user_agent=user_agent[:300]))
    return session_id


def resolve_session(conn: Connection, session_id: str, max_idle: timedelta,
                    ip: str) -> tuple[Actor, str | None] | None:
    """(actor, hash to touch or None) for a live session cookie; None when it ended, idled
    out, or its user's password changed. Reads only: the caller touches in a write."""
    row = conn.execute(
        select(user_sessions.c.id_hash, user_sessions.c.user_id, user_sessions.c.last_seen_at)
        .join(users, users.c.id == user_sessions.c.user_id)
        .where(user_sessions.c.id_hash == _sha256(session_id),
               user_sessions.c.auth_stamp == users.c.auth_stamp,
               users.c.is_active.is_(True))).first()
    now = utcnow()
    if row is None or now - row.last_seen_at > max_idle:
        return None
    stale = (now - row.last_seen_at).total_seconds() > SESSION_TOUCH_SECONDS
    return actor_for_user(conn, row.user_id, ip=ip), row.id_hash if stale else None


def touch_session(conn: Connection, id_hash: str) -> None:
    conn.execute(update(user_sessions).where(user_sessions.c.id_hash == id_hash)
                 .values(last_seen_at=utcnow()))


def close_session(conn: Connection, session_id: str) -> None:
    conn.execute(delete(user_sessions).where(user_sessions.c.id_hash == _sha256(session_id)))


# --- API tokens ----------------------------------------------------------------------------

def create_token(conn: Connection, actor: Actor, user_id: int, name: str,
                 valid_days: int = 0) -> tuple[int, str]:
    """A new token for a user; returns (id, secret). The secret is shown once, stored hashed."""
    name = name.strip()
    if not name:
        raise ServiceError("a token needs a name", "name")
    get_user(conn, user_id)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token_id = conn.execute(insert(api_tokens).values(
        user_id=user_id, name=name[:200], prefix=secret[:10], token_hash=_sha256(secret),
        created_at=now, expires_at=now + timedelta(days=valid_days) if valid_days else None,
    )).inserted_primary_key[0]
    record(conn, actor, "token.create", "token", token_id, user_id=user_id, name=name)
    return token_id, secret


def list_tokens(conn: Connection, user_id: int | None = None) -> list[dict]:
    query = (select(api_tokens.c.id, api_tokens.c.user_id, users.c.email, api_tokens.c.name,
                    api_tokens.c.prefix, api_tokens.c.created_at, api_tokens.c.expires_at,
                    api_tokens.c.last_used_at, api_tokens.c.revoked_at)
             .join(users, users.c.id == api_tokens.c.user_id).order_by(api_tokens.c.id))
    if user_id is not None:
        query = query.where(api_tokens.c.user_id == user_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def get_token(conn: Connection, token_id: int) -> dict:
    for token in list_tokens(conn):
        if token["id"] == token_id:
            return token
    raise NotFound(f"token {token_id} does not exist", "token_id")


def revoke_token(conn: Connection, actor: Actor, token_id: int) -> None:
    token = get_token(conn, token_id)
    if token["revoked_at"] is None:
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=utcnow()))
        record(conn, actor, "token.revoke", "token", token_id, user_id=token["user_id"])


def resolve_token(conn: Connection, secret: str, ip: str) -> tuple[Actor, int | None] | None:
    """(actor, token id to touch or None) for a live token secret, else None. Reads only."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = conn.execute(
        select(api_tokens).join(users, users.c.id == api_tokens.c.user_id)
        .where(api_tokens.c.token_hash == _sha256(secret), users.c.is_active.is_(True))).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        return None
    stale = row.last_used_at is None or (now - row.last_used_at).total_seconds() > SESSION_TOUCH_SECONDS
    return actor_for_user(conn, row.user_id, ip=ip, token_id=row.id), row.id if stale else None


def touch_token(conn: Connection, token_id: int) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=utcnow()))


# --- small key/value state ------------------------------------------------------------------

def put_state(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(app_state).where(app_state.c.key == key))
    conn.execute(insert(app_state).values(key=key, value=value))


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(app_state.c.value).where(app_state.c.key == key)).scalar()


# --- first-run setup -----------------------------------------------------------------------

SETUP_KEY = "setup_token_sha256"


def setup_needed(conn: Connection) -> bool:
    return conn.execute(select(users.c.id).limit(1)).first() is None


def issue_setup_token(conn: Connection) -> str:
    """A one-time secret for the first-admin page; replaces any earlier one."""
    token = secrets.token_urlsafe(24)
    put_state(conn, SETUP_KEY, _sha256(token))
    return token


def setup_token_valid(conn: Connection, token: str) -> bool:
    stored = get_state(conn, SETUP_KEY)
    return bool(stored) and secrets.compare_digest(stored, _sha256(token)) and setup_needed(conn)


def complete_setup(conn: Connection, token: str, email: str, password: str, name: str,
                   ip: str) -> int:
    """Creates the first Administrator with a valid setup token; the token then dies."""
    if not setup_token_valid(conn, token):
        raise Forbidden("this setup link is not valid any more")
    sync_builtin_roles(conn)
    admin = Actor(user_id=None, label=email.strip().lower(), permissions=frozenset(PERMISSIONS), ip=ip)
    user_id = create_user(conn, admin, email, password, role_id_by_name(conn, "Administrator"), name)
    conn.execute(delete(app_state).where(app_state.c.key == SETUP_KEY))
    return user_id
