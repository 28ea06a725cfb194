"""What a route declares: the permission it needs before its view runs.

UI routes declare it with `access.policy.requires`, REST routes with `api.operation(permission=)`;
the app's guard reads it (`declared`) and lets `access.policy.authorize` decide. Kept in the base
so that the REST toolkit can mark its routes without depending on access; access.policy owns
which names exist, and `check_declared` refuses an app with an unknown one.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

PUBLIC = "public"                # anyone, no login (tracking, health, login page)
SIGNED_IN = "signed-in"          # any signed-in user, whatever the role (own profile, /me)
ATTR = "altkraft_permission"
BEARER_ATTR = "altkraft_bearer"
LISTS_ATTR = "altkraft_keeps_to_lists"

F = TypeVar("F", bound=Callable)


def declare(permission: str) -> Callable[[F], F]:
    """Marks a view with the permission it needs (unchecked here: see access.policy)."""
    def mark(view: F) -> F:
        setattr(view, ATTR, permission)
        return view
    return mark


def declared(view: Callable) -> str | None:
    return getattr(view, ATTR, None)


def bearer(view: F) -> F:
    """Marks a route outside /api/ that authenticates like the API (Authorization: Bearer),
    never by the session cookie: what a machine scrapes (/metrics)."""
    setattr(view, BEARER_ATTR, True)
    return view


def takes_bearer(view: Callable) -> bool:
    return getattr(view, BEARER_ATTR, False)


def keeps_to_lists(view: F) -> F:
    """Marks a route that a role limited to some lists may use: the objects its path names are
    checked by the guard (access.scope), and it shows only the actor's lists' data. A route
    without the mark answers 403 to such a role (it covers every list)."""
    setattr(view, LISTS_ATTR, True)
    return view


def serves_limited_roles(view: Callable) -> bool:
    return getattr(view, LISTS_ATTR, False)
