"""The one place permissions are checked: routes declare, `authorize` decides.

Every view function carries a declaration, set by one of the decorators below; the request
guard in app.py reads it for UI and API routes alike, and CLI commands call `authorize` with
their actor. A route without a declaration makes create_app fail (see check_declared).
"""
from __future__ import annotations

from collections.abc import Callable

from altkraft_onprem.errors import Forbidden
from altkraft_onprem.route_permission import PUBLIC, SIGNED_IN, F, declare, declared, keeps_to_lists

from .models import PERMISSIONS, Actor

__all__ = ["PUBLIC", "SIGNED_IN", "authorize", "check_declared", "declared", "keeps_to_lists", "public",
           "requires", "signed_in"]


def _known(permission: str) -> bool:
    return permission in PERMISSIONS or permission in (PUBLIC, SIGNED_IN)


def requires(permission: str) -> Callable[[F], F]:
    if not _known(permission):
        raise ValueError(f"unknown permission {permission!r}")
    return declare(permission)


public = requires(PUBLIC)
signed_in = requires(SIGNED_IN)


def authorize(actor: Actor | None, permission: str) -> None:
    """Raises Forbidden unless the actor holds the permission (PUBLIC needs no actor)."""
    if permission == PUBLIC:
        return
    if actor is None:
        raise Forbidden("sign in first")
    if permission != SIGNED_IN and not actor.can(permission):
        raise Forbidden("your role (%(role)s) does not allow this (%(permission)s)", role=actor.role, permission=permission)


def check_declared(app) -> None:
    """Refuse to build an app with a route that declares no permission, or one no role can
    hold (REST routes are marked by the toolkit, which does not know the names)."""
    missing = sorted(endpoint for endpoint, view in app.view_functions.items()
                     if declared(view) is None)
    if missing:
        raise RuntimeError("routes without a permission declaration: " + ", ".join(missing))
    unknown = sorted(f"{endpoint} ({declared(view)})" for endpoint, view in app.view_functions.items()
                     if not _known(declared(view)))
    if unknown:
        raise RuntimeError("routes declaring an unknown permission: " + ", ".join(unknown))
