"""Signing in (with throttling of failed attempts) and the sessions behind the UI cookie."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, func, insert, select, update

from altkraft_onprem.config.declared import LOGIN_FAILURES_PER_IP_FACTOR
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import TooManyRequests

from . import twofactor
from .models import (
    SESSION_TOUCH_SECONDS,
    Actor,
    login_attempts,
    secret_digest,
    user_sessions,
    users,
)
from .users import actor_for_user, password_hasher

T = TypeVar("T")


def authenticate(conn: Connection, email: str, password: str, ip: str, *,
                 max_failures: int, lockout: timedelta) -> int | None:
    """The user id for good credentials, None for bad ones (the failure is recorded: the
    caller commits it); TooManyRequests after too many recent failures."""
    email = email.strip().lower()[:320]
    _refuse_when_throttled(conn, email, ip, max_failures, lockout)
    row = conn.execute(select(users.c.id, users.c.password_hash, users.c.is_active)
                       .where(users.c.email == email)).first()
    ok = False
    if row is not None and row.is_active:
        try:
            ok = password_hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        password_hasher.hash(password)  # same work for unknown addresses: no timing oracle
    conn.execute(insert(login_attempts).values(at=utcnow(), email=email, ip=ip, success=ok))
    if not ok:
        return None
    if password_hasher.check_needs_rehash(row.password_hash):
        conn.execute(update(users).where(users.c.id == row.id).values(password_hash=password_hasher.hash(password)))
    return row.id


def _refuse_when_throttled(conn: Connection, email: str, ip: str, max_failures: int,
                           lockout: timedelta) -> None:
    since = utcnow() - lockout
    recent = select(func.count()).select_from(login_attempts).where(
        login_attempts.c.at >= since, login_attempts.c.success.is_(False))
    by_email = conn.execute(recent.where(login_attempts.c.email == email)).scalar()
    by_ip = conn.execute(recent.where(login_attempts.c.ip == ip)).scalar()
    if by_email >= max_failures or by_ip >= max_failures * LOGIN_FAILURES_PER_IP_FACTOR:
        raise TooManyRequests("too many failed logins; try again later")


def verify_sign_in_code(conn: Connection, user_id: int, code: str, ip: str, key: bytes, *,
                        max_failures: int, lockout: timedelta) -> str | None:
    """Checks a code of the user's second factor — the second step of a sign-in, and every
    change a signed-in user makes to their own second factor: "totp" or "recovery" for a good
    code, None for a wrong one. Wrong codes count as failed logins of the user (the same
    throttle as passwords; the caller commits the failure before refusing)."""
    return _throttled(conn, user_id, ip, max_failures, lockout,
                      lambda: twofactor.verify(conn, user_id, code, key, ip))


def confirm_enrolment(conn: Connection, actor: Actor, user_id: int, code: str, ip: str,
                      key: bytes, *, max_failures: int, lockout: timedelta) -> list[str] | None:
    """twofactor.confirm_enrolment under the sign-in throttle: the recovery codes, or None for
    a code that does not check out (counted as a failed login; the caller commits it)."""
    return _throttled(conn, user_id, ip, max_failures, lockout,
                      lambda: twofactor.confirm_enrolment(conn, actor, user_id, code, key))


def _throttled(conn: Connection, user_id: int, ip: str, max_failures: int, lockout: timedelta,
               check: Callable[[], T | None]) -> T | None:
    """`check()` of a second-factor code, refused (TooManyRequests) after too many recent
    failed logins of the user or from the IP; its outcome recorded as a login attempt (None:
    a failure)."""
    email = conn.execute(select(users.c.email).where(users.c.id == user_id)).scalar_one()
    _refuse_when_throttled(conn, email, ip, max_failures, lockout)
    outcome = check()
    conn.execute(insert(login_attempts).values(at=utcnow(), email=email, ip=ip,
                                               success=outcome is not None))
    return outcome


def open_session(conn: Connection, user_id: int, ip: str, user_agent: str) -> str:
    """A new session — a sign-in, by the login form or the first-run setup, so it is the
    user's last login too; returns the secret id for the cookie (only its hash is stored)."""
    session_id = secrets.token_urlsafe(32)
    stamp = conn.execute(select(users.c.auth_stamp).where(users.c.id == user_id)).scalar_one()
    now = utcnow()
    conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=now))
    conn.execute(insert(user_sessions).values(
        id_hash=secret_digest(session_id), user_id=user_id, auth_stamp=stamp, created_at=now,
        last_seen_at=now, ip=ip[:64], user_agent=user_agent[:300]))
    return session_id


def resolve_session(conn: Connection, session_id: str, max_idle: timedelta,
                    ip: str) -> tuple[Actor, str | None] | None:
    """(actor, hash to touch or None) for a live session cookie; None when it ended, idled
    out, or its user's password changed. Reads only: the caller touches in a write."""
    row = conn.execute(
        select(user_sessions.c.id_hash, user_sessions.c.user_id, user_sessions.c.last_seen_at)
        .join(users, users.c.id == user_sessions.c.user_id)
        .where(user_sessions.c.id_hash == secret_digest(session_id),
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
    conn.execute(delete(user_sessions).where(user_sessions.c.id_hash == secret_digest(session_id)))
