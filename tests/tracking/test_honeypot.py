"""The hidden honeypot link, end to end: a campaign is sent through a real SMTP sink, the
message carries a link no person can see or reach, and whoever fetches it from the running
service is labelled a machine, together with that recipient's other clicks."""
from __future__ import annotations

import re
import time

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

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
WINDOW = 1.0        # scanner window: clicks sooner than this after delivery count as a gateway's
ANCHOR = re.compile(r"<a\s[^>]*>.*?</a>", re.S)


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env, "--no-consumer", extra_env={
        "ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "100",
        "ALTKRAFT_TRACKING__SCANNER_WINDOW_SECONDS": str(WINDOW)})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sent(env, module_smtp_sink, service):
    settings, _ = sending_settings(env, module_smtp_sink, server__public_url=service.url)
    people = [{"email": f"honey{i}@example.net", "first_name": "H"} for i in range(2)]
    list_id, ids = make_list(env, "Honeypot list", people)
    campaign_id = make_campaign(env, make_message(env), [list_id])
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    time.sleep(WINDOW + 0.2)         # past the window in which any click is a gateway's
    messages = {m.envelope_to[0]: m for m in module_smtp_sink.messages}
    return {"settings": settings, "campaign_id": campaign_id, "ids": ids,
            "html": {i: messages[p["email"]].get_body(("html",)).get_content() for i, p in enumerate(people)},
            "text": {i: messages[p["email"]].get_body(("plain",)).get_content() for i, p in enumerate(people)}}


def _anchors(html: str) -> list[str]:
    return ANCHOR.findall(html)


def _honeypot(html: str) -> str:
    [anchor] = [a for a in _anchors(html) if 'aria-hidden="true"' in a]
    return anchor


def _href(anchor: str) -> str:
    return re.search(r'href="([^"]+)"', anchor).group(1)


def _clicks(env, subscriber_id: int, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        with db.read(env.engine) as conn:
            rows = [dict(r) for r in conn.execute(select(tracking_events).where(
                tracking_events.c.subscriber_id == subscriber_id, tracking_events.c.kind == "click")
                .order_by(tracking_events.c.id)).mappings()]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_every_message_has_one_hidden_honeypot(sent):
    for html in sent["html"].values():
        anchor = _honeypot(html)
        assert "display:none" in anchor and "mso-hide:all" in anchor and 'tabindex="-1"' in anchor
        assert re.sub(r"<[^>]+>", "", anchor) == "&#8203;"      # nothing to see even if shown
        target = tokens.decode(tokens.tracking_key(sent["settings"]), _href(anchor).rsplit("/", 1)[1], "c")
        assert target.link_index == tokens.HONEYPOT_LINK


def test_the_text_version_has_no_honeypot(sent):
    for html, text in zip(sent["html"].values(), sent["text"].values(), strict=True):
        assert _href(_honeypot(html)) not in text


def test_a_fetch_of_the_honeypot_labels_the_clicker_a_machine(env, sent):
    html = sent["html"][0]
    real = next(_href(a) for a in _anchors(html) if "/t/c/" in a and 'aria-hidden' not in a)
    assert requests.get(real, allow_redirects=False, timeout=5, headers={"User-Agent": BROWSER}).status_code == 302
    assert requests.get(_href(_honeypot(html)), allow_redirects=False, timeout=5,
                        headers={"User-Agent": BROWSER}).status_code == 200
    rows = _clicks(env, sent["ids"][0], 2)
    assert [(r["link_index"], r["machine"], r["reason"]) for r in rows] == \
        [(0, True, "scanner"), (tokens.HONEYPOT_LINK, True, "honeypot")]


def test_a_person_who_clicks_a_real_link_stays_human(env, sent):
    html = sent["html"][1]
    real = next(_href(a) for a in _anchors(html) if "/t/c/" in a and 'aria-hidden' not in a)
    assert requests.get(real, allow_redirects=False, timeout=5, headers={"User-Agent": BROWSER}).status_code == 302
    rows = _clicks(env, sent["ids"][1], 1)
    assert [(r["link_index"], r["machine"], r["reason"]) for r in rows] == [(0, False, None)]

