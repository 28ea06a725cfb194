"""Tracking endpoints through the app (test client): headers, 404s, labels."""
from __future__ import annotations

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.tracking import tokens
from altkraft_onprem.tracking.buffer import BUFFER
from altkraft_onprem.tracking.models import tracking_events


def _stored(env, **where):
    BUFFER.flush()
    query = select(tracking_events)
    for name, value in where.items():
        query = query.where(tracking_events.c[name] == value)
    with db.read(env.engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _path(url: str) -> str:
    return "/t/" + url.split("/t/", 1)[1]


def test_open_pixel_is_an_uncached_gif(env, client):
    response = client.get(_path(tokens.open_url(env.settings, 1, 10, 100)))
    assert response.status_code == 200
    assert response.mimetype == "image/gif"
    assert response.data.startswith(b"GIF89a") and response.data.endswith(b";")
    assert "no-store" in response.headers["Cache-Control"]


def test_open_is_stored_with_its_ids(env, client):
    client.get(_path(tokens.open_url(env.settings, 2, 20, 200)),
               headers={"User-Agent": "Thunderbird/128"})
    rows = _stored(env, campaign_id=2)
    assert [(r["kind"], r["subscriber_id"], r["version_id"], r["machine"]) for r in rows] == \
        [("open", 20, 200, False)]
    assert rows[0]["user_agent"] == "Thunderbird/128"


def test_tampered_open_token_is_a_plain_404(env, client):
    token = tokens.open_url(env.settings, 3, 30, 300).rsplit("/", 1)[1]
    response = client.get("/t/o/" + token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    assert response.status_code == 404
    assert response.mimetype == "text/plain"


def test_head_open_is_labelled_machine(env, client):
    client.head(_path(tokens.open_url(env.settings, 4, 40, 400)))
    rows = _stored(env, campaign_id=4)
    assert [(r["machine"], r["reason"]) for r in rows] == [(True, "head")]


def test_apple_proxy_open_is_labelled_mpp(env, client):
    client.get(_path(tokens.open_url(env.settings, 5, 50, 500)),
               headers={"User-Agent": "Mozilla/5.0"}, environ_base={"REMOTE_ADDR": "17.58.1.2"})
    rows = _stored(env, campaign_id=5)
    assert [(r["machine"], r["reason"]) for r in rows] == [(True, "mpp")]


def test_gmail_proxy_read_is_not_measurable_and_human(env, client):
    ua = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    response = client.get(_path(tokens.read_url(env.settings, 6, 60, 600)), headers={"User-Agent": ua})
    assert response.data.endswith(b";")
    rows = _stored(env, campaign_id=6)
    assert [(r["kind"], r["machine"], r["reason"], r["read_class"]) for r in rows] == \
        [("read", False, "proxy", "unmeasurable")]


def test_the_fast_path_answers_before_flask(env, client):
    """No session cookie, no security-header hook: the open and click never reach Flask."""
    from altkraft_onprem.tracking.fast import FastPath

    assert isinstance(env.app.wsgi_app, FastPath)
    response = client.get(_path(tokens.open_url(env.settings, 7, 70, 700)))
    assert "Set-Cookie" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Length"] == str(len(response.data))


def test_behind_a_trusted_proxy_the_forwarded_address_is_stored(env):
    from altkraft_onprem.app import create_app

    app = create_app(env.settings.replace(server__trusted_proxies=1), engine=env.engine)
    app.test_client().get(_path(tokens.open_url(env.settings, 8, 80, 800)),
                          headers={"X-Forwarded-For": "203.0.113.9"}, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    rows = _stored(env, campaign_id=8)
    assert [r["ip"] for r in rows] == ["203.0.113.9"]


def test_a_click_on_an_unknown_version_is_a_plain_404(env, client):
    response = client.get(_path(tokens.click_url(env.settings, 9, 90, 999999, 0)))
    assert response.status_code == 404 and response.data == b"Not found\n"


def test_the_tracking_image_through_a_proxy_is_an_open_and_an_unmeasurable_read(env, client):
    ua = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    response = client.get(_path(tokens.image_url(env.settings, 9, 90, 900)), headers={"User-Agent": ua})
    assert response.status_code == 200 and response.data.endswith(b";")
    rows = _stored(env, campaign_id=9)
    assert sorted((r["kind"], r["machine"], r["reason"], r["read_class"]) for r in rows) == \
        [("open", False, "proxy", None), ("read", False, "proxy", "unmeasurable")]


def test_a_head_of_the_tracking_image_is_a_machine_open(env, client):
    client.head(_path(tokens.image_url(env.settings, 10, 100, 1000)))
    rows = _stored(env, campaign_id=10)
    assert sorted((r["kind"], r["machine"], r["reason"]) for r in rows) == \
        [("open", True, "head"), ("read", True, "head")]


def test_a_tracking_image_token_is_no_open_pixel_token_and_back(env, client):
    image = tokens.image_url(env.settings, 11, 110, 1100).rsplit("/", 1)[1]
    opened = tokens.open_url(env.settings, 11, 110, 1100).rsplit("/", 1)[1]
    assert client.get("/t/o/" + image).status_code == 404
    assert client.get("/t/i/" + opened).status_code == 404
    assert client.get("/t/r/" + image).status_code == 404
