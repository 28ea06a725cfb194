"""Clicks through the real running service: redirect target from the version the recipient got
plus the campaign's UTM marks, 404 for anything else, machine labels for scanners."""
from __future__ import annotations

import time

import pytest
import requests
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.tracking import tokens
from altkraft_onprem.tracking.models import tracking_events
from tests.conftest import start_service
from tests.reports.conftest import add_list, add_subscriber, deliver, make_campaign

pytestmark = pytest.mark.slow

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
HTML = ('<html><body><a href="https://shop.example/a?x=1">A</a> <a href="https://shop.example/b?utm_source=own">B</a>'
        ' <a href="https://shop.example/c">C</a> <a href="mailto:help@example.com">mail</a></body></html>')


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        list_id = add_list(conn, "click list")
        people = [add_subscriber(conn, f"c{n}@clicks.example", "2026-03-01 00:00", lists_joined=[list_id])
                  for n in range(6)]
        campaign = make_campaign(conn, "Clicks", HTML, list_id,
                                 utm={"utm_source": "newsletter", "utm_medium": "email"})
        for person in people[:5]:
            deliver(conn, campaign["id"], person, done="2026-03-01 00:00")
    return {"campaign": campaign["id"], "version": campaign["version_ids"][0], "people": people}


@pytest.fixture(scope="module")
def service(env, world):
    server = start_service(env, "--no-consumer", extra_env={"ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "100"})
    yield server
    server.stop()


def _click(env, service, world, person: int, link: int, **kwargs) -> requests.Response:
    settings = env.settings.replace(server__public_url=service.url)
    url = tokens.click_url(settings, world["campaign"], world["people"][person], world["version"], link)
    return requests.get(url, allow_redirects=False, timeout=5, headers={"User-Agent": BROWSER}, **kwargs)


def _events(env, world, person: int, wait_for: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        with db.read(env.engine) as conn:
            rows = [dict(r) for r in conn.execute(select(tracking_events).where(
                tracking_events.c.subscriber_id == world["people"][person],
                tracking_events.c.kind == "click").order_by(tracking_events.c.id)).mappings()]
        if len(rows) >= wait_for or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_click_redirects_to_the_link_with_utm(env, service, world):
    response = _click(env, service, world, 0, 0)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example/a?x=1&utm_source=newsletter&utm_medium=email"
    rows = _events(env, world, 0, 1)
    assert [(r["link_index"], r["version_id"], r["machine"]) for r in rows] == [(0, world["version"], False)]


def test_utm_already_on_the_link_is_not_duplicated(env, service, world):
    response = _click(env, service, world, 1, 1)
    assert response.headers["Location"] == "https://shop.example/b?utm_source=own&utm_medium=email"


def test_a_link_the_version_does_not_have_is_404(env, service, world):
    response = _click(env, service, world, 1, 9)
    assert response.status_code == 404 and "Location" not in response.headers


def test_target_never_comes_from_the_request(env, service, world):
    response = _click(env, service, world, 1, 0, params={"url": "https://evil.example/", "next": "//evil.example"})
    assert response.headers["Location"].startswith("https://shop.example/a?")


def test_a_scripted_client_is_labelled_a_scanner(env, service, world):
    settings = env.settings.replace(server__public_url=service.url)
    url = tokens.click_url(settings, world["campaign"], world["people"][1], world["version"], 2)
    requests.get(url, allow_redirects=False, timeout=5, headers={"User-Agent": "python-requests/2.32"})
    rows = [r for r in _events(env, world, 1, 3) if r["link_index"] == 2]
    assert [(r["machine"], r["reason"]) for r in rows] == [(True, "scanner")]


def test_head_click_is_labelled_machine(env, service, world):
    settings = env.settings.replace(server__public_url=service.url)
    url = tokens.click_url(settings, world["campaign"], world["people"][2], world["version"], 2)
    assert requests.head(url, allow_redirects=False, timeout=5, headers={"User-Agent": BROWSER}).status_code == 302
    assert [(r["machine"], r["reason"]) for r in _events(env, world, 2, 1)] == [(True, "head")]


def test_every_link_within_seconds_is_a_scanner(env, service, world):
    for link in (0, 1, 2):
        _click(env, service, world, 3, link)
    time.sleep(0.5)
    rows = _events(env, world, 3, 3)
    assert [(r["machine"], r["reason"]) for r in rows] == [(True, "scanner")] * 3


def test_honeypot_click_is_labelled_and_marks_the_other_clicks(env, service, world):
    _click(env, service, world, 4, 0)
    response = _click(env, service, world, 4, tokens.HONEYPOT_LINK)
    assert response.status_code == 200 and "Location" not in response.headers
    time.sleep(0.5)
    rows = _events(env, world, 4, 2)
    assert sorted((r["link_index"], r["machine"], r["reason"]) for r in rows) == \
        [(0, True, "scanner"), (tokens.HONEYPOT_LINK, True, "honeypot")]


def test_click_right_after_delivery_is_a_scanner(env, service, world):
    from sqlalchemy import update

    from altkraft_onprem.campaigns.models import deliveries
    from altkraft_onprem.db.types import utcnow

    with db.write(env.engine) as conn:
        deliver(conn, world["campaign"], world["people"][5])
        conn.execute(update(deliveries).where(deliveries.c.subscriber_id == world["people"][5])
                     .values(done_at=utcnow()))
    _click(env, service, world, 5, 0)
    assert [(r["machine"], r["reason"]) for r in _events(env, world, 5, 1)] == [(True, "scanner")]
