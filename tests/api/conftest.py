"""API test helpers: bearer tokens per role and a client that sends them."""
from __future__ import annotations

import pytest

CLIENT_IP = "203.0.113.7"   # what the audit log must record as the caller's address


class Api:
    """The Flask test client speaking to /api/v1 with one bearer token."""

    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def __call__(self, method: str, path: str, token: str | None = None, **kwargs):
        headers = kwargs.pop("headers", {})
        headers["Authorization"] = f"Bearer {token or self.token}"
        return self.client.open("/api/v1" + path, method=method, headers=headers,
                                environ_base={"REMOTE_ADDR": CLIENT_IP}, **kwargs)


@pytest.fixture(scope="module")
def admin_token(env) -> str:
    return env.token("Administrator")


@pytest.fixture()
def api(env, admin_token) -> Api:
    return Api(env.app.test_client(), admin_token)
