"""Single sign-on (OpenID Connect): who a verified identity from the provider is here.

The protocol (discovery, the authorization code flow, the ID token's signature, issuer,
audience and nonce) is authlib's, in views_sso.py; this module only maps the provider's
claims to a user: by email address, refused when the provider says the address is not
verified or when its domain is not allowed, created at the first sign-in when the
configuration says so.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable

from sqlalchemy import Connection, insert, select

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Forbidden

from .models import Actor, login_attempts, users
from .roles import role_id_by_name
from .users import create_user, normalise_email


def user_for_claims(conn: Connection, claims: dict, *, issuer: str, ip: str,
                    allowed_domains: Iterable[str] = (), create: bool = False,
                    default_role: str = "Viewer") -> int:
    """The id of the active user the provider's claims name; Forbidden (with the reason)
    otherwise. A sign-in is recorded like a password login; a created account is audited."""
    raw = claims.get("email")
    if not isinstance(raw, str) or not raw:
        raise Forbidden("the identity provider sent no email address (ask for the email scope)")
    if claims.get("email_verified") is False:
        raise Forbidden("the identity provider has not verified %(email)s", email=raw)
    email = normalise_email(raw)
    domains = {d.lower().lstrip("@") for d in allowed_domains}
    if domains and email.rsplit("@", 1)[1] not in domains:
        raise Forbidden("addresses at %(domain)s may not sign in here", domain=email.rsplit("@", 1)[1])
    row = conn.execute(select(users.c.id, users.c.is_active).where(users.c.email == email)).first()
    if row is None:
        if not create:
            raise Forbidden("there is no account for %(email)s here; ask an administrator", email=email)
        # Who the audit log names for the account made; nothing checks its permissions.
        actor = Actor(user_id=None, label=f"sso:{issuer}", permissions=frozenset(), ip=ip)
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        # A password nobody knows: the account signs in by single sign-on until one is set.
        user_id = create_user(conn, actor, email, secrets.token_urlsafe(32),
                              role_id_by_name(conn, default_role), name[:200])
    elif not row.is_active:
        raise Forbidden("the account %(email)s is deactivated", email=email)
    else:
        user_id = row.id
    conn.execute(insert(login_attempts).values(at=utcnow(), email=email, ip=ip, success=True))
    return user_id
