"""A test send end to end: the live service renders the message and hands it to a real SMTP
server (aiosmtpd); the mail parses, the emoji subject decodes, both parts are there and the
images it points at are served by the live service."""
from __future__ import annotations

import io
import json
import re

import pytest
import requests
from PIL import Image

from tests.conftest import start_service
from tests.smtp_sink import SmtpSink

SUBJECT = "🎉 Скидки для {{ subscriber.first_name | default('друзей') }} — 40 %"


@pytest.fixture(scope="module")
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(env, sink):
    server = start_service(env, extra_env={"ALTKRAFT_SMTP__RELAYS": json.dumps([sink.relay()])})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sent(env, live, sink):
    """One test send through the live API; returns (the received message, the image URL)."""
    headers = {"Authorization": f"Bearer {env.token('Manager')}"}
    png = io.BytesIO()
    Image.new("RGB", (64, 32), "orange").save(png, "PNG")
    media = requests.post(f"{live.url}/api/v1/media", headers=headers, timeout=30,
                          files={"file": ("banner.png", png.getvalue(), "image/png")}).json()
    html = (f'<html><body><h1>Hi {{{{ subscriber.first_name | default("friend") }}}}</h1>'
            f'<img src="{media["url"]}" alt="Banner"><p><a href="https://shop.example/sale">Shop</a></p>'
            f"</body></html>")
    created = requests.post(f"{live.url}/api/v1/messages", headers=headers, timeout=30, json={
        "name": "Round trip", "subject": SUBJECT, "preheader": "Только неделю", "html": html}).json()
    results = requests.post(f"{live.url}/api/v1/messages/{created['id']}/send-test", headers=headers,
                            timeout=60, json={"recipients": ["qa@example.net"],
                                              "from_email": "news@example.com",
                                              "from_name": "Магазин 🛍"}).json()
    assert results[0]["sent"] is True, results
    assert len(sink.messages) == 1
    return sink.messages[0], media["url"]


def test_subject_with_emoji_and_cyrillic_decodes_to_the_original(sent):
    message, _url = sent
    assert str(message["Subject"]) == "🎉 Скидки для Jane — 40 %"


def test_subject_header_is_rfc2047_encoded_on_the_wire(sent):
    message, _url = sent
    raw = message.as_bytes() if not hasattr(message, "raw") else message.raw
    header = re.search(rb"^Subject:(.*?)\r?\n(?![ \t])", raw, re.M | re.S).group(1)
    assert b"=?utf-8?" in header.lower() and all(byte < 128 for byte in header)


def test_html_and_text_parts_are_present(sent):
    message, _url = sent
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "Hi Jane" in html and "Hi Jane" in text
    assert "Shop [https://shop.example/sale]" in text


def test_display_name_decodes(sent):
    message, _url = sent
    assert message["From"].addresses[0].display_name == "Магазин 🛍"


def test_image_in_the_mail_is_reachable(sent):
    message, url = sent
    html = message.get_body(("html",)).get_content()
    assert url in html
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (64, 32)
