"""Automation tests: a module's app that may reach webhooks on 127.0.0.1, and a real HTTP
receiver there that records each request and answers as told."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from altkraft_onprem import db, tasks
from altkraft_onprem.app import create_app
from tests.conftest import Env, fresh_database, make_settings
from tests.delivery.keys import write_keys

SETTINGS = {"automation__webhook_allowed_private_networks": ["127.0.0.0/8"],
            "automation__webhook_disable_after": 4,
            "automation__webhook_timeout_seconds": 1.0}


def module_env(template_db, tmp_path_factory, **extra):
    """The module's world (like tests/conftest.py's env) with automation settings: yields Env."""
    data_dir = tmp_path_factory.mktemp("data")
    url, drop = fresh_database(template_db, data_dir)
    settings = make_settings(data_dir, url, **{**SETTINGS, **extra})
    engine = db.build_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    yield Env(settings, engine, app, data_dir, url)
    engine.dispose()
    drop()


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory) -> Env:
    yield from module_env(template_db, tmp_path_factory)


def sending_env(template_db, tmp_path_factory, sink):
    """module_env whose mail goes to the SMTP sink, DKIM-signed: yields Env."""
    entries, _ = write_keys(tmp_path_factory.mktemp("dkim"))
    yield from module_env(template_db, tmp_path_factory, smtp__relays=[sink.relay()],
                          dkim__keys=entries, delivery__processes=1)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers POST /<anything> with the status set for that path (200 by default) and the
    body set for it (a line naming the status by default) after `delays[path]` seconds."""

    port: int
    requests: list[Received] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture()
def receiver():
    state: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hub: Receiver = state["receiver"]
            hub.requests.append(Received(self.path, dict(self.headers.items()), body))
            time.sleep(hub.delays.get(self.path, 0))
            status = hub.statuses.get(self.path, 200)
            payload = hub.bodies.get(self.path.partition("?")[0],
                                     f"status {status} for {self.path}".encode())
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass            # the client gave up (a timeout test)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["receiver"] = Receiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["receiver"]
    server.shutdown()
    server.server_close()
