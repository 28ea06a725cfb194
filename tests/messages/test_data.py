"""External JSON data: fetched under SSRF rules (no private, loopback or link-local addresses,
also not via DNS or redirects), with size limits and clear errors."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from altkraft_onprem.messages.data import DataFetchError, fetch_json, per_subscriber_data


class _Handler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.hits.append(self.path)
        if self.path.startswith("/doc"):
            self._send(200, json.dumps({"products": [{"name": "Scarf"}], "path": self.path}).encode())
        elif self.path == "/to-metadata":
            self._redirect("http://169.254.169.254/latest/meta-data/")
        elif self.path == "/to-loopback":
            self._redirect(f"http://127.0.0.2:{self.server.server_port}/doc")
        elif self.path == "/to-localhost":
            self._redirect(f"http://localhost:{self.server.server_port}/doc")
        elif self.path == "/big":
            self._send(200, b"[" + b"1," * 100_000 + b"1]")
        elif self.path == "/not-json":
            self._send(200, b"<html>oops</html>")
        else:
            self._send(404, b"{}")

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def trusting(env):
    """Settings where an administrator allowed exactly 127.0.0.1 (the test server)."""
    return env.settings.replace(messages__data_allowed_private_networks=["127.0.0.1/32"])


def test_loopback_address_is_refused(env, server):
    _Handler.hits.clear()
    with pytest.raises(DataFetchError, match="loopback"):
        fetch_json(env.settings, server + "/doc")
    assert _Handler.hits == []


def test_cloud_metadata_address_is_refused(env):
    with pytest.raises(DataFetchError, match="169.254.169.254"):
        fetch_json(env.settings, "http://169.254.169.254/latest/meta-data/")


def test_name_resolving_to_loopback_is_refused(env, server):
    port = server.rsplit(":", 1)[1]
    with pytest.raises(DataFetchError, match="localhost resolves to"):
        fetch_json(env.settings, f"http://localhost:{port}/doc")


def test_private_and_unspecified_addresses_are_refused(env):
    for url in ("http://10.0.0.1/", "http://192.168.1.1/", "http://[::1]/", "http://0.0.0.0/",
                "http://[::ffff:127.0.0.1]/"):
        with pytest.raises(DataFetchError):
            fetch_json(env.settings, url)


def test_other_schemes_are_refused(env):
    with pytest.raises(DataFetchError, match="only http"):
        fetch_json(env.settings, "file:///etc/passwd")


def test_allowed_network_is_fetched(trusting, server):
    assert fetch_json(trusting, server + "/doc")["products"][0]["name"] == "Scarf"


def test_redirect_to_metadata_is_refused(trusting, server):
    with pytest.raises(DataFetchError, match="169.254.169.254"):
        fetch_json(trusting, server + "/to-metadata")


def test_redirect_to_other_loopback_is_refused(trusting, server):
    with pytest.raises(DataFetchError, match="127.0.0.2"):
        fetch_json(trusting, server + "/to-loopback")


def test_host_allowlist_applies(env, server):
    settings = env.settings.replace(messages__data_allowed_private_networks=["127.0.0.1/32"],
                                    messages__data_allowed_hosts=["api.example.com"])
    with pytest.raises(DataFetchError, match="data_allowed_hosts"):
        fetch_json(settings, server + "/doc")


def test_size_limit_applies(env, server):
    settings = env.settings.replace(messages__data_allowed_private_networks=["127.0.0.1/32"],
                                    messages__data_max_kb=1)
    with pytest.raises(DataFetchError, match="larger than 1 KB"):
        fetch_json(settings, server + "/big")


def test_invalid_json_is_a_clear_error(trusting, server):
    with pytest.raises(DataFetchError, match="not valid JSON"):
        fetch_json(trusting, server + "/not-json")


def test_http_error_status_is_reported(trusting, server):
    with pytest.raises(DataFetchError, match="HTTP 404"):
        fetch_json(trusting, server + "/missing")


def test_per_subscriber_urls_are_fetched_once_each(trusting, server):
    _Handler.hits.clear()
    source = {"kind": "per_subscriber", "url_template": server + "/doc?tier={{ subscriber.custom.tier }}"}
    contexts = {1: {"subscriber": {"custom": {"tier": "gold"}}}, 2: {"subscriber": {"custom": {"tier": "gold"}}},
                3: {"subscriber": {"custom": {"tier": "silver"}}}}
    result = per_subscriber_data(trusting, source, contexts)
    assert result[1]["path"] == "/doc?tier=gold" and result[3]["path"] == "/doc?tier=silver"
    assert sorted(_Handler.hits) == ["/doc?tier=gold", "/doc?tier=silver"]


def test_preview_with_a_refused_data_url_is_a_clear_422(api, server):
    created = api("POST", "/messages", json={
        "name": "d", "subject": "s", "html": "<p>{{ data.products }}</p>",
        "data_source": {"kind": "url", "url": server + "/doc"}}).get_json()
    response = api("POST", f"/messages/{created['id']}/preview", json={})
    assert response.status_code == 422 and "loopback" in response.get_json()["detail"]


def test_pasted_document_is_available_in_preview(api):
    created = api("POST", "/messages", json={
        "name": "d", "subject": "s", "html": "<p>{{ data.offer.title }}</p>",
        "data_source": {"kind": "document", "document": '{"offer": {"title": "Half price"}}'}}).get_json()
    assert "Half price" in api("POST", f"/messages/{created['id']}/preview", json={}).get_json()["html"]


def test_pasted_document_that_is_not_json_is_refused(api):
    response = api("POST", "/messages", json={
        "name": "d", "subject": "s", "html": "<p></p>",
        "data_source": {"kind": "document", "document": "{oops"}})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "data_source.document"


def test_draft_data_source_without_its_url_is_a_422(api):
    created = api("POST", "/messages", json={"name": "d", "subject": "s", "html": "<p></p>"}).get_json()
    response = api("POST", f"/messages/{created['id']}/preview",
                   json={"draft": {"data_source": {"kind": "url", "url": None}}})
    assert response.status_code == 422 and response.get_json()["errors"][0]["field"] == "data_source.url"


def test_a_shared_cache_fetches_a_url_once_per_send(trusting, server):
    _Handler.hits.clear()
    source = {"kind": "per_subscriber", "url_template": server + "/doc?id={{ subscriber.id % 2 }}"}
    cache: dict = {}
    for batch in ({1: {"subscriber": {"id": 1}}, 2: {"subscriber": {"id": 2}}},
                  {3: {"subscriber": {"id": 3}}, 4: {"subscriber": {"id": 4}}}):
        per_subscriber_data(trusting, source, batch, cache)
    assert sorted(_Handler.hits) == ["/doc?id=0", "/doc?id=1"]
