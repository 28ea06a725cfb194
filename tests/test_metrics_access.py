"""/metrics answers a token whose role holds metrics:read, or an address in
server.metrics_allowed_networks; nobody else (loopback included)."""
from __future__ import annotations

import pytest

from altkraft_onprem import config, db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.app import create_app


def _get(app, token: str | None = None, ip: str = "127.0.0.1"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return app.test_client().get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": ip})


def _app_allowing(env, networks: list[str]):
    return create_app(env.settings.replace(server__metrics_allowed_networks=networks),
                      engine=env.engine)


def test_an_administrators_token_reads_the_metrics(env):
    response = _get(env.app, env.token("Administrator"))
    assert response.status_code == 200
    assert "# TYPE altkraft_http_requests_total counter" in response.get_data(as_text=True)


def test_a_scrapers_own_role_with_metrics_read_only_reads_them(env):
    user = env.user("Viewer")
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, system_actor(), "Scraper", ["metrics:read"])
        access.update_user(conn, system_actor(), user["id"], role_id=role_id)
        _, secret = access.create_token(conn, system_actor(), user["id"], "prometheus")
    assert _get(env.app, secret).status_code == 200


def test_a_token_without_metrics_read_is_forbidden(env):
    response = _get(env.app, env.token("Manager"))
    assert response.status_code == 403


def test_no_token_from_loopback_is_unauthorized(env):
    assert _get(env.app).status_code == 401


def test_a_forged_token_is_unauthorized(env):
    assert _get(env.app, "ak_" + "x" * 43).status_code == 401


def test_a_signed_in_session_is_not_enough(env, client):
    env.login(client, env.user("Administrator"))
    assert client.get("/metrics").status_code == 401


@pytest.mark.parametrize("ip", ["10.1.2.3", "::ffff:10.9.9.9"])
def test_an_address_in_an_allowed_network_reads_without_a_token(env, ip):
    assert _get(_app_allowing(env, ["10.0.0.0/8"]), ip=ip).status_code == 200


def test_an_address_outside_the_allowed_networks_is_unauthorized(env):
    app = _app_allowing(env, ["10.0.0.0/8", "2001:db8::/32"])
    assert _get(app, ip="192.0.2.1").status_code == 401
    assert _get(app, ip="127.0.0.1").status_code == 401


def test_an_allowed_address_reaches_nothing_but_the_metrics(env):
    app = _app_allowing(env, ["10.0.0.0/8"])
    response = app.test_client().get("/api/v1/lists", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 401


def test_a_network_that_is_not_one_is_refused_with_its_key(env):
    with pytest.raises(config.ConfigError, match="server.metrics_allowed_networks"):
        env.settings.replace(server__metrics_allowed_networks=["10.0.0.0/33"])
