"""The one place permissions are checked: routes declare, `authorize` decides.

Every view function carries a declaration, set by one of the decorators below; the request
guard in app.py reads it for UI and API routes alike, and CLI commands call `authorize` with
their actor. A route without a declaration makes create_app fail (see check_declared).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from altkraft_onprem.errors import Forbidden

from .models import PERMISSIONS, Actor

PUBLIC = "public"                # anyone, no login (tracking, health, login page)
SIGNED_IN = "signed-in"          # any signed-in user, whatever the role (own profile, /me)
ATTR = "altkraft_permission"

F = TypeVar("F", bound=Callable)


def requires(permission: str) -> Callable[[F], F]:
    if permission not in PERMISSIONS and permission not in (PUBLIC, SIGNED_IN):
        raise ValueError(f"unknown permission {permission!r}")

    def mark(view: F) -> F:
        setattr(view, ATTR, permission)
        return view
    return mark


public = requires(PUBLIC)
signed_in = requires(SIGNED_IN)


def declared(view: Callable) -> str | None:
    return getattr(view, ATTR, None)


def authorize(actor: Actor | None, permission: str) -> None:
    """Raises Forbidden unless the actor holds the permission (PUBLIC needs no actor)."""
    if permission == PUBLIC:
        return
    if actor is None:
        raise Forbidden("sign in first")
    if permission != SIGNED_IN and not actor.can(permission):
        raise Forbidden(f"your role ({actor.role}) does not allow this ({permission})")


def check_declared(app) -> None:
    """Refuse to build an app with a route that declares no permission."""
    missing = sorted(endpoint for endpoint, view in app.view_functions.items()
                     if declared(view) is None)
    if missing:
        raise RuntimeError("routes without a permission declaration: " + ", ".join(missing))
