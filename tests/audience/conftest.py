"""Helpers for audience tests: an actor, quick people and lists."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import lists, subscribers

ACTOR = system_actor("test")


class People:
    def __init__(self, env):
        self.env = env

    def list(self, name: str, optin: str = "single") -> int:
        with db.write(self.env.engine) as conn:
            return lists.create_list(conn, ACTOR, name, optin=optin)

    def add(self, email: str, list_ids=(), status: str = "confirmed", **fields) -> int:
        with db.write(self.env.engine) as conn:
            return subscribers.create_subscriber(conn, ACTOR, {"email": email, **fields},
                                                 list_ids=list_ids, status=status)


@pytest.fixture()
def people(env):
    return People(env)


@pytest.fixture(scope="module")
def admin_token(env) -> str:
    return env.token("Administrator")


@pytest.fixture()
def api(env, admin_token):
    from tests.api.conftest import Api
    return Api(env.app.test_client(), admin_token)
