"""Tracking through the real running service (`altkraft run`): reading time measured from how
long a client holds the stream, and no event lost on a graceful stop."""
from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.tracking import tokens
from altkraft_onprem.tracking.models import tracking_events
from tests.conftest import start_service

pytestmark = pytest.mark.slow


def _hold(url: str, seconds: float) -> bytes:
    """A mail client showing the message for `seconds`, then closing it."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "User-Agent: Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15\r\n\r\n".encode())
        started = time.monotonic()
        first = b""
        while b"GIF89a" not in first and len(first) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            first += chunk
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    return first


def _rows(env, campaign_id: int):
    with db.read(env.engine) as conn:
        return [dict(r) for r in conn.execute(
            select(tracking_events).where(tracking_events.c.campaign_id == campaign_id)
            .order_by(tracking_events.c.subscriber_id)).mappings()]


def _wait_for_rows(env, campaign_id: int, count: int, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(env, campaign_id)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


CAP = 11.0      # above the 10 s hold of the classification test, short enough to wait for


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env, "--no-consumer", extra_env={"ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "200",
                                                           "ALTKRAFT_TRACKING__READ_CAP_SECONDS": str(CAP)})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped(env, service):
    """A client that never lets go, started at once so that it runs beside the other tests."""
    settings = env.settings.replace(server__public_url=service.url)
    pool = ThreadPoolExecutor(1)
    future = pool.submit(lambda: requests.get(tokens.read_url(settings, 72, 1, 1), timeout=30).content)
    yield future
    pool.shutdown()


def _service_settings(env, service):
    return env.settings.replace(server__public_url=service.url)


def test_holding_the_stream_classifies_glanced_skimmed_read(env, service, capped):
    settings = _service_settings(env, service)
    holds = {1: 1.0, 2: 5.0, 3: 10.0}
    with ThreadPoolExecutor(3) as pool:
        firsts = list(pool.map(lambda s: _hold(tokens.read_url(settings, 70, s, 1), holds[s]), holds))
    assert all(b"GIF89a" in first for first in firsts)
    rows = _wait_for_rows(env, 70, 3)
    assert [r["read_class"] for r in rows] == ["glanced", "skimmed", "read"]
    for row in rows:
        assert holds[row["subscriber_id"]] - 0.5 <= row["read_seconds"] < holds[row["subscriber_id"]] + 2


def test_tampered_click_through_the_service_is_404(env, service):
    settings = _service_settings(env, service)
    url = tokens.click_url(settings, 71, 1, 1, 0)
    response = requests.get(url[:-3] + "AAA", allow_redirects=False, timeout=5)
    assert response.status_code == 404
    assert "location" not in response.headers


def test_capped_stream_is_a_complete_gif(env, capped):
    body = capped.result(timeout=30)
    assert body.startswith(b"GIF89a") and body.endswith(b"\x3b")
    rows = _wait_for_rows(env, 72, 1)
    assert [(r["read_class"], r["read_seconds"]) for r in rows] == [("read", CAP)]


@pytest.fixture(scope="module")
def stopped(env):
    """Opens answered and one stream held, then SIGTERM; nothing flushed before (60 s interval)."""
    server = start_service(env, "--no-consumer", extra_env={"ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "60000",
                                                           "ALTKRAFT_TRACKING__FLUSH_EVENTS": "100000",
                                                           "ALTKRAFT_SERVER__WORKERS": "2"})
    settings = env.settings.replace(server__public_url=server.url)
    parts = urlsplit(tokens.read_url(settings, 74, 1, 1))
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: Mozilla/5.0 (X11)\r\n\r\n".encode())
    data = b""
    while b"GIF89a" not in data:
        data += sock.recv(4096)
    started = time.monotonic()
    answered = 0
    with requests.Session() as session:
        for subscriber in range(200):
            if session.get(tokens.open_url(settings, 73, subscriber, 1), timeout=5).status_code == 200:
                answered += 1
    time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
    code = server.stop()
    sock.close()
    return {"answered": answered, "code": code}


def test_no_event_lost_on_graceful_stop(env, stopped):
    with db.read(env.engine) as conn:
        stored = conn.execute(select(func.count()).select_from(tracking_events)
                              .where(tracking_events.c.campaign_id == 73)).scalar()
    assert stopped["code"] == 0
    assert stopped["answered"] == 200
    assert stored == stopped["answered"]


def test_a_held_stream_is_recorded_when_the_service_stops(env, stopped):
    # the stop did not wait out the 30 s cap, and the hold so far was measured
    rows = _rows(env, 74)
    assert [(r["kind"], r["read_class"]) for r in rows] == [("read", "skimmed")]
