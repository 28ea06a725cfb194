"""API tokens: a secret shown once and stored hashed, acting as its user."""
from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import Connection, bindparam, insert, select, update

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from .audit import record
from .models import SESSION_TOUCH_SECONDS, Actor, api_tokens, secret_digest, users
from .users import actor_for_user, get_user

TOKEN_PREFIX = "ak_"


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
        user_id=user_id, name=name[:200], prefix=secret[:10], token_hash=secret_digest(secret),
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
    raise NotFound("token %(token_id)s does not exist", "token_id", token_id=token_id)


def revoke_token(conn: Connection, actor: Actor, token_id: int) -> None:
    token = get_token(conn, token_id)
    if token["revoked_at"] is None:
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=utcnow()))
        record(conn, actor, "token.revoke", "token", token_id, user_id=token["user_id"])


# Every API request runs this: built once (building it cost more than running it).
_LIVE_TOKEN = select(api_tokens).join(users, users.c.id == api_tokens.c.user_id).where(
    api_tokens.c.token_hash == bindparam("digest"), users.c.is_active.is_(True))


def resolve_token(conn: Connection, secret: str, ip: str) -> tuple[Actor, int | None] | None:
    """(actor, token id to touch or None) for a live token secret, else None. Reads only."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = conn.execute(_LIVE_TOKEN, {"digest": secret_digest(secret)}).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
        return None
    stale = row.last_used_at is None or (now - row.last_used_at).total_seconds() > SESSION_TOUCH_SECONDS
    return actor_for_user(conn, row.user_id, ip=ip, token_id=row.id), row.id if stale else None


def touch_token(conn: Connection, token_id: int) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=utcnow()))
