"""Every route of the app x every built-in role (and anonymous): the declared permission decides.

The route list comes from app.url_map at collection time, so a route another domain adds later
is covered without touching this file; a route without a declaration stops create_app.
"""
from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest
from flask import Blueprint
from werkzeug.routing import IntegerConverter, PathConverter, UUIDConverter

from altkraft_onprem import app as app_module
from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import BUILTIN_ROLES
from altkraft_onprem.access.policy import PUBLIC, SIGNED_IN, declared
from altkraft_onprem.app import SESSION_KEY, create_app
from altkraft_onprem.route_permission import takes_bearer
from tests.conftest import csrf_token, make_settings

ANONYMOUS = "anonymous"
ROLES = [*BUILTIN_ROLES, ANONYMOUS]
MISSING_ID = 987654          # an id no test data reaches: routes answer 404, not a refusal


def _argument(converter):
    if isinstance(converter, IntegerConverter):
        return MISSING_ID
    if isinstance(converter, UUIDConverter):
        return uuid.UUID(int=MISSING_ID)
    if isinstance(converter, PathConverter):
        return "no/such/file"
    choices = getattr(converter, "items", None)       # <any(a,b):x>
    if choices:
        return sorted(choices)[0]
    return "nonexistent"


def _route_table() -> list[tuple[str, str, str, str, bool]]:
    """(method, url, endpoint, permission, token-authenticated) for every rule, built from a
    throwaway app."""
    with tempfile.TemporaryDirectory(prefix="ak-routes-") as name:
        data_dir = Path(name)        # create_app reads the secret key; it never connects
        app = create_app(make_settings(data_dir, f"sqlite:///{data_dir / 'unused.db'}"))
    routes = []
    for rule in app.url_map.iter_rules():
        methods = rule.methods - {"HEAD", "OPTIONS"}
        method = "GET" if "GET" in methods else sorted(methods)[0]
        values = {name: _argument(conv) for name, conv in rule._converters.items()}
        url = rule.build(values, append_unknown=False)[1]
        view = app.view_functions[rule.endpoint]
        routes.append((method, url, rule.endpoint, declared(view),
                       url.startswith("/api/") or takes_bearer(view)))
    return sorted(routes)


ROUTES = _route_table()
CASES = [pytest.param(method, url, endpoint, permission, bearer, role, id=f"{method} {url} as {role}")
         for method, url, endpoint, permission, bearer in ROUTES for role in ROLES]


def _expected_allowed(permission: str, role: str) -> bool:
    if permission == PUBLIC:
        return True
    if role == ANONYMOUS:
        return False
    return permission == SIGNED_IN or permission in BUILTIN_ROLES[role]


@pytest.fixture(scope="module")
def role_users(env) -> dict[str, dict]:
    return {role: env.user(role) for role in BUILTIN_ROLES}


@pytest.fixture(scope="module")
def role_tokens(env, role_users) -> dict[str, str]:
    tokens = {}
    with db.write(env.engine) as conn:
        for role, user in role_users.items():
            tokens[role] = access.create_token(conn, access.actor_for_user(conn, user["id"]),
                                               user["id"], "matrix")[1]
    return tokens


def _signed_in_client(env, user: dict):
    """A test client with a fresh server-side session (no password hashing per case)."""
    client = env.app.test_client()
    with db.write(env.engine) as conn:
        session_id = access.open_session(conn, user["id"], "127.0.0.1", "pytest")
    with client.session_transaction() as session:
        session[SESSION_KEY] = session_id
        session.permanent = True
    return client


@pytest.mark.parametrize("method,url,endpoint,permission,bearer,role", CASES)
def test_route_answers_per_declared_permission(env, role_users, role_tokens,
                                               method, url, endpoint, permission, bearer, role):
    api = bearer
    headers, data = {}, None
    if role == ANONYMOUS:
        client = env.app.test_client()
    elif api:
        client = env.app.test_client()
        headers["Authorization"] = f"Bearer {role_tokens[role]}"
    else:
        client = _signed_in_client(env, role_users[role])
    if api and method in {"POST", "PUT", "PATCH"}:
        headers["Content-Type"] = "application/json"
        data = "{}"
    elif not api and method != "GET":
        data = {"csrf_token": csrf_token(client.get("/login").get_data(as_text=True))}
    response = client.open(url, method=method, headers=headers, data=data)
    status, location = response.status_code, response.headers.get("Location", "")
    refused_anonymously = status == 401 if api else (status == 302 and location.startswith("/login?next="))

    if _expected_allowed(permission, role):
        assert status not in (401, 403) and not refused_anonymously, (status, location)
        assert status < 500, response.get_data(as_text=True)[:500]
    elif role == ANONYMOUS:
        assert refused_anonymously, (status, location)
    else:
        assert status == 403, status
        if api:
            assert response.mimetype == "application/problem+json"


def test_matrix_covers_ui_and_api_routes():
    urls = [url for _, url, *_ in ROUTES]
    assert any(u.startswith("/api/v1/") for u in urls) and "/users" in urls and "/audit" in urls


def test_route_without_declaration_stops_create_app(env, monkeypatch):
    stray = Blueprint("stray", __name__)

    @stray.route("/stray")
    def undeclared():
        return "no permission declared"

    original = app_module._blueprints
    monkeypatch.setattr(app_module, "_blueprints", lambda: [*original(), stray])
    with pytest.raises(RuntimeError, match="stray.undeclared"):
        create_app(env.settings, engine=env.engine)
