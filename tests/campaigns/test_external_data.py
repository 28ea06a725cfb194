"""External JSON data ({{ data.… }}) in a real send, and the view-in-browser link.

A small HTTP server on 127.0.0.1 plays the company's recommendation service; the settings
allow the loopback network for it (by default private addresses are refused).
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.messages import service as messages
from altkraft_onprem.messages.data import DataFetchError
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    progress,
    sending_settings,
    start,
)


class DataService(BaseHTTPRequestHandler):
    fetched: list[str] = []
    down = False

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        type(self).fetched.append(self.path)
        if type(self).down:
            self.send_error(503)
            return
        if self.path == "/shared.json":
            body = {"promo": "WINTER25", "items": [{"title": "Лыжи"}, {"title": "Санки"}]}
        elif self.path.startswith("/offers/"):
            body = {"offer": f"offer-for-{self.path.rsplit('/', 1)[1]}"}
        else:
            self.send_error(404)
            return
        payload = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def data_service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), DataService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def settings(env, sink):
    found, _ = sending_settings(env, sink, messages__data_allowed_private_networks=["127.0.0.0/8"])
    return found


def send(env, settings, name: str, emails: list[str], html: str, data_source: dict,
         processes: int = 1) -> int:
    list_id, _ = make_list(env, name, [{"email": e, "first_name": "Ann"} for e in emails])
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, name, subject=f"{name} news",
                                                html=html, data_source=data_source)
    campaign_id = make_campaign(env, message_id, [list_id], name=name)
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=processes)
    return campaign_id


def offers_campaign(env, name: str, emails: list[str], url_template: str) -> int:
    """A draft campaign whose message prints {{ data.offer }} from a per-subscriber URL."""
    list_id, _ = make_list(env, name, [{"email": e} for e in emails])
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(
            conn, ACTOR, name, subject=f"{name} news", html="<p>{{ data.offer }}</p>",
            data_source={"kind": "per_subscriber", "url_template": url_template})
    return make_campaign(env, message_id, [list_id], name=name)


def html_of(sink, email: str) -> str:
    (message,) = sink.by_recipient(email)
    return message.get_body(("html",)).get_content()


def test_pasted_document_reaches_every_message(env, settings, sink):
    document = {"promo": "PASTE10", "items": [{"title": "Ботинки"}]}
    send(env, settings, "Pasted", ["pasted@example.net"],
         "<p>{{ data.promo }} {% for item in data['items'] %}{{ item.title }}{% endfor %}</p>",
         {"kind": "document", "document": document})
    assert "PASTE10 Ботинки" in html_of(sink, "pasted@example.net")


def test_url_is_fetched_once_for_the_whole_send_across_senders(env, settings, sink, data_service):
    DataService.fetched.clear()
    emails = [f"shared{i}@example.net" for i in range(5)]
    send(env, settings, "Shared", emails, "<p>{{ data.promo }} {{ data['items'][0].title }}</p>",
         {"kind": "url", "url": f"{data_service}/shared.json"}, processes=2)
    for email in emails:
        assert "WINTER25 Лыжи" in html_of(sink, email)
    # once by the check at the start, once for the whole send (not once per sender)
    assert DataService.fetched == ["/shared.json", "/shared.json"]


def test_per_subscriber_url_template_personalises_each_message(env, settings, sink, data_service):
    emails = [f"offer{i}@example.net" for i in range(4)]
    send(env, settings, "Offers", emails, "<p>{{ data.offer }}</p>",
         {"kind": "per_subscriber", "url_template": data_service + "/offers/{{ subscriber.email }}"})
    for email in emails:
        assert f"offer-for-{email}" in html_of(sink, email)


def test_data_that_cannot_be_fetched_refuses_the_start(env, settings, sink, data_service):
    emails = ["missing1@example.net", "missing2@example.net"]
    campaign_id = offers_campaign(env, "Missing", emails, data_service + "/gone/{{ subscriber.id }}")
    with pytest.raises(DataFetchError, match="404"):
        start(env, settings, campaign_id)
    assert progress(env, campaign_id)["state"] == "draft"
    assert all(not sink.by_recipient(email) for email in emails)


def test_a_fetch_failing_during_the_send_pauses_the_campaign_and_sends_nothing(env, settings, sink,
                                                                               data_service):
    emails = ["gone1@example.net", "gone2@example.net"]
    campaign_id = offers_campaign(env, "Gone later", emails, data_service + "/offers/{{ subscriber.id }}")
    start(env, settings, campaign_id)               # the data service answers at the start …
    DataService.down = True                         # … and is down when the send runs
    try:
        run_campaign(settings, env.engine, campaign_id, processes=1)
    finally:
        DataService.down = False
    assert all(not sink.by_recipient(email) for email in emails)
    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["remaining"]) == ("paused", 0, 2)
    with db.read(env.engine) as conn:
        reason = campaigns.get_campaign(conn, campaign_id)["pause_reason"]
    assert "external data could not be loaded" in reason and "503" in reason


def test_messages_link_to_their_view_in_browser_page(env, settings, sink, client):
    send(env, settings, "Webview", ["webview@example.net"],
         '<p><a href="{{ view_in_browser_url }}">View in browser</a> for {{ subscriber.first_name }}</p>',
         {"kind": "none"})
    html = html_of(sink, "webview@example.net")
    start_at = html.index("/p/view/")
    path = html[start_at:html.index('"', start_at)]
    page = client.get(path)
    assert page.status_code == 200
    assert "for Ann" in page.get_data(as_text=True)
