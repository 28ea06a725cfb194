"""List-scoped rights: a role may be limited to some lists (`roles.list_scope`, a JSON list of
list ids; NULL: every list). Its users see and send only to those lists.

Enforced in one place, the request guard (app.py), with the rules here:
- a route must be marked `keeps_to_lists` (route_permission) to serve such a role at all —
  every other page and operation covers every list and answers 403;
- an object the route's path names (list_id, subscriber_id, campaign_id, ...) must belong to
  the actor's lists, else 404 as if it did not exist; the domains say which lists an object
  belongs to (`register`, wired in reactions.py);
- marked routes that show collections or take list ids in a body keep to `actor.lists`
  through `only()` / `require_lists()`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection

from altkraft_onprem.errors import Forbidden

from .models import Actor

# A path parameter's name -> (conn, id) -> (the object's lists, "all" | "any"), or None when
# there is no such object (the view answers its own 404). "all": every list of the object
# must be the actor's (a campaign); "any": one is enough (a person on several lists).
Resolver = Callable[[Connection, int], tuple[set[int], str] | None]
_RESOLVERS: dict[str, Resolver] = {}


def register(parameter: str, resolver: Resolver) -> None:
    _RESOLVERS[parameter] = resolver


def limited(actor: Actor | None) -> bool:
    return actor is not None and actor.lists is not None


def only(actor: Actor | None) -> frozenset[int] | None:
    """The list ids a query must keep to (None: every list)."""
    return actor.lists if actor is not None else None


def allows(actor: Actor | None, list_ids: Iterable[int], rule: str = "all") -> bool:
    if not limited(actor):
        return True
    ids = set(list_ids)
    if rule == "any":
        return bool(ids & actor.lists)
    return ids <= actor.lists


def require_lists(actor: Actor | None, list_ids: Iterable[int], field: str = "list_ids", *,
                  at_least_one: bool = False) -> None:
    """Forbidden when a limited actor names a list outside its scope (creating, targeting), or
    none at all where what it makes would otherwise belong to no list it can see."""
    if not limited(actor):
        return
    ids = {int(i) for i in list_ids}
    if at_least_one and not ids:
        raise Forbidden("your role is limited to some lists: choose at least one of them", field)
    outside = sorted(ids - actor.lists)
    if outside:
        raise Forbidden("your role is limited to some lists; list(s) %(ids)s are not among them",
                        field, ids=", ".join(map(str, outside)))


def refuse_limited(actor: Actor | None) -> None:
    """What every list shares (saved segments) is not for a limited role to change."""
    if limited(actor):
        raise Forbidden("segments are shared by every list; a role limited to some lists may "
                        "use them but not change them")


def hidden_object(conn: Connection, actor: Actor, view_args: dict | None) -> str | None:
    """The path parameter naming an object outside the actor's lists, or None."""
    if not limited(actor):
        return None
    for name, value in (view_args or {}).items():
        resolver = _RESOLVERS.get(name)
        if resolver is None or not isinstance(value, int):
            continue
        found = resolver(conn, value)
        if found is not None and not allows(actor, found[0], found[1]):
            return name
    return None
