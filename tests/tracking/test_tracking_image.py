"""One tracking image per message, end to end: a campaign sent through a real SMTP sink
carries a single 1x1 image (two scored SpamAssassin's HTML_IMAGE_ONLY_12 on short messages);
fetched from the running service it records the open as the request arrives and the reading
time when the client lets go. A campaign without open tracking has no image, and the two
images of mail sent before keep working."""
from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.tracking import tokens
from altkraft_onprem.tracking.models import tracking_events
from tests.campaigns.helpers import make_campaign, make_list, make_message, sending_settings, start
from tests.conftest import start_service

pytestmark = pytest.mark.slow

IMAGE = re.compile(r"<img\s[^>]*>")
MAIL_CLIENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env, "--no-consumer", extra_env={"ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "100"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sent(env, module_smtp_sink, service):
    """Two campaigns to one person each: with open tracking, and without."""
    settings, _ = sending_settings(env, module_smtp_sink, server__public_url=service.url)
    found = {}
    for track_opens in (True, False):
        email = f"image-{track_opens}@example.net"
        list_id, ids = make_list(env, f"Image list {track_opens}", [{"email": email, "first_name": "I"}])
        campaign_id = make_campaign(env, make_message(env), [list_id], track_opens=track_opens)
        start(env, settings, campaign_id)
        run_campaign(settings, env.engine, campaign_id, processes=1)
        [message] = [m for m in module_smtp_sink.messages if m.envelope_to == [email]]
        found[track_opens] = {"campaign_id": campaign_id, "subscriber_id": ids[0],
                              "html": message.get_body(("html",)).get_content()}
    return settings, found


def _events(env, campaign_id: int, count: int, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        with db.read(env.engine) as conn:
            rows = [dict(r) for r in conn.execute(select(tracking_events).where(
                tracking_events.c.campaign_id == campaign_id).order_by(tracking_events.c.id)).mappings()]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _src(tag: str) -> str:
    return re.search(r'src="([^"]+)"', tag).group(1)


def test_a_message_carries_one_tracking_image(sent):
    _, found = sent
    html = found[True]["html"]
    images = [tag for tag in IMAGE.findall(html) if 'width="1"' in tag]
    assert len(images) == 1
    assert "/t/i/" in _src(images[0])
    assert "/t/o/" not in html and "/t/r/" not in html


def test_without_open_tracking_there_is_no_image(sent):
    _, found = sent
    html = found[False]["html"]
    assert "/t/i/" not in html and "/t/o/" not in html and "/t/r/" not in html
    assert not [tag for tag in IMAGE.findall(html) if 'width="1"' in tag]


def test_the_image_is_the_open_at_once_and_the_reading_time_when_let_go(env, sent):
    _, found = sent
    campaign_id = found[True]["campaign_id"]
    [tag] = [t for t in IMAGE.findall(found[True]["html"]) if 'width="1"' in t]
    parts = urlsplit(_src(tag))
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"User-Agent: {MAIL_CLIENT}\r\n\r\n".encode())
        started = time.monotonic()
        first = b""
        while b"GIF89a" not in first:
            first += sock.recv(4096)
        during = _events(env, campaign_id, 1)           # the message is still on screen
        assert [(r["kind"], r["machine"]) for r in during] == [("open", False)]
        time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
    rows = _events(env, campaign_id, 2)
    assert [r["kind"] for r in rows] == ["open", "read"]
    read = rows[1]
    assert read["read_class"] == "skimmed" and 2.5 <= read["read_seconds"] < 5
    assert {r["subscriber_id"] for r in rows} == {found[True]["subscriber_id"]}


def test_the_two_images_of_mail_already_sent_still_answer(env, sent):
    settings, found = sent
    campaign_id, subscriber_id = found[False]["campaign_id"], found[False]["subscriber_id"]
    version_id = 1
    headers = {"User-Agent": MAIL_CLIENT}
    pixel = requests.get(tokens.open_url(settings, campaign_id, subscriber_id, version_id),
                         headers=headers, timeout=5)
    assert pixel.status_code == 200 and pixel.content.startswith(b"GIF89a")
    parts = urlsplit(tokens.read_url(settings, campaign_id, subscriber_id, version_id))
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"User-Agent: {MAIL_CLIENT}\r\n\r\n".encode())
        first = b""
        while b"GIF89a" not in first:
            first += sock.recv(4096)
        time.sleep(1)
    rows = _events(env, campaign_id, 2)
    assert sorted(r["kind"] for r in rows) == ["open", "read"]
    assert [r["read_class"] for r in rows if r["kind"] == "read"] == ["glanced"]
