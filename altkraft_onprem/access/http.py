"""What the access routes, UI and API alike, take from the request at hand: the client's
address, the app's secret key, the sign-in throttle's limits — and a second-factor code,
checked wherever one is asked for as the sign-in checks it: throttled and recorded as a login
attempt (sessions.py), so that a code cannot be guessed through a page or an operation that
changes the second factor either."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from flask import current_app, request
from sqlalchemy import Connection

from altkraft_onprem import db
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError

from . import service
from .models import Actor

T = TypeVar("T")


def client_ip() -> str:
    return (request.remote_addr or "")[:64]


def secret_key() -> bytes:
    return current_app.config["SECRET_KEY"]


def login_limits() -> dict:
    """The throttle of failed sign-ins (passwords and second-factor codes alike)."""
    settings = current_settings()
    return {"max_failures": settings["security.login_max_failures"],
            "lockout": timedelta(minutes=settings["security.login_lockout_minutes"])}


def with_own_code(user_id: int, code: str, then: Callable[[Connection], T]) -> T:
    """`then(conn)` in one write transaction once the user's current code (or a recovery code)
    checks out: a change to their own second factor proves the device is at hand. A wrong code
    is committed as a failed login, then refused (ServiceError); too many: TooManyRequests."""
    with db.write(db.get_engine()) as conn:
        right = service.verify_sign_in_code(conn, user_id, code, client_ip(), secret_key(),
                                             **login_limits()) is not None
        result = then(conn) if right else None
    if not right:
        raise ServiceError("that code is not right; type the current code from your "
                           "authenticator app, or a recovery code", "code")
    return result


def confirm_enrolment(actor: Actor, user_id: int, code: str) -> list[str]:
    """Turns the waiting second factor on with a code of it; returns the recovery codes. A
    wrong code is committed as a failed login, then refused, as in `with_own_code`."""
    with db.write(db.get_engine()) as conn:
        codes = service.confirm_enrolment(conn, actor, user_id, code, client_ip(), secret_key(),
                                          **login_limits())
    if codes is None:
        raise ServiceError("that code is not right; check the time on your phone and type the "
                           "current code", "code")
    return codes
