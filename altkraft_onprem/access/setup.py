"""The first-run setup link (a one-time secret for the first Administrator) and the small
key/value state it is kept in.
"""
from __future__ import annotations

import secrets

from sqlalchemy import Connection, delete, insert, select

from altkraft_onprem.db import insert_ignoring_conflicts
from altkraft_onprem.errors import Forbidden

from .models import PERMISSIONS, Actor, app_state, secret_digest, users
from .roles import role_id_by_name, sync_builtin_roles
from .users import create_user


def put_state(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(app_state).where(app_state.c.key == key))
    conn.execute(insert(app_state).values(key=key, value=value))


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(app_state.c.value).where(app_state.c.key == key)).scalar()


def claim_state(conn: Connection, key: str, value: str) -> bool:
    """Stores `key` unless it is there already: True for the first caller only (on either
    database, also between processes)."""
    return conn.execute(insert_ignoring_conflicts(conn, app_state).values(
        key=key, value=value).returning(app_state.c.key)).first() is not None


def drop_states_below(conn: Connection, prefix: str, value: str) -> None:
    """Removes the keys under `prefix` whose value sorts before `value` (expired ones)."""
    conn.execute(delete(app_state).where(app_state.c.key.startswith(prefix, autoescape=True),
                                         app_state.c.value < value))


SETUP_KEY = "setup_token_sha256"


def setup_needed(conn: Connection) -> bool:
    return conn.execute(select(users.c.id).limit(1)).first() is None


def issue_setup_token(conn: Connection) -> str:
    """A one-time secret for the first-admin page; replaces any earlier one."""
    token = secrets.token_urlsafe(24)
    put_state(conn, SETUP_KEY, secret_digest(token))
    return token


def setup_token_valid(conn: Connection, token: str) -> bool:
    stored = get_state(conn, SETUP_KEY)
    return bool(stored) and secrets.compare_digest(stored, secret_digest(token)) and setup_needed(conn)


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
