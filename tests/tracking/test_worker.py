"""The gunicorn worker that answers plain open/click requests on its event loop
(tracking/worker.py): which requests it takes, and — through a real `altkraft run` on raw
sockets — that requests it takes and requests it leaves to gunicorn mix on one connection."""
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.tracking import tokens
from altkraft_onprem.tracking.models import tracking_events
from altkraft_onprem.tracking.worker import parse_plain_request
from tests.conftest import start_service

OPEN_PATH = "/t/o/AbC-_9"
PLAIN = f"GET {OPEN_PATH} HTTP/1.1\r\nHost: mail.example\r\nUser-Agent: Mozilla/5.0 (Mac)\r\n\r\n".encode()


def test_a_plain_tracking_request_is_parsed():
    assert parse_plain_request(PLAIN) == ("GET", OPEN_PATH, "", {"HOST": "mail.example",
                                                                 "USER_AGENT": "Mozilla/5.0 (Mac)"})
    head = b"HEAD /t/c/xyz?utm=1 HTTP/1.1\r\nX-Forwarded-For:  203.0.113.9 \r\n\r\n"
    assert parse_plain_request(head) == ("HEAD", "/t/c/xyz", "utm=1", {"X_FORWARDED_FOR": "203.0.113.9"})


@pytest.mark.parametrize("data", [
    PLAIN[:-2],                                                   # not complete yet
    PLAIN + PLAIN,                                                # pipelined: gunicorn's parser takes them
    PLAIN.replace(b"HTTP/1.1", b"HTTP/1.0"),
    PLAIN.replace(b"GET", b"POST"),
    PLAIN.replace(OPEN_PATH.encode(), b"/t/r/AbC"),               # the held reading-time stream
    PLAIN.replace(OPEN_PATH.encode(), b"/t/o/a%41"),              # percent-encoded
    PLAIN.replace(OPEN_PATH.encode(), b"/t/o/a/b"),
    PLAIN.replace(OPEN_PATH.encode(), b"/t/o/" + b"A" * 97),      # longer than any token
    PLAIN.replace(OPEN_PATH.encode(), b"/login"),
    PLAIN.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
    PLAIN.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n"),
    PLAIN.replace(b"\r\n\r\n", b"\r\nHost: other\r\n\r\n"),      # a repeated header
    PLAIN.replace(b"\r\n\r\n", b"\r\n continued\r\n\r\n"),        # obsolete line folding
    PLAIN.replace(b"(Mac)", "(Mäc)".encode()),                    # not ASCII
    PLAIN.replace(b"Host:", b"Ho st:"),
    b"\r\n\r\n",
    b"",
])
def test_anything_else_is_left_to_gunicorn(data):
    assert parse_plain_request(data) is None


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env, "--no-consumer", extra_env={"ALTKRAFT_TRACKING__FLUSH_INTERVAL_MS": "200",
                                                           "ALTKRAFT_SERVER__TRUSTED_PROXIES": "1"})
    yield server
    server.stop()


@pytest.fixture()
def settings(env, service):
    return env.settings.replace(server__public_url=service.url)


def _connect(service) -> socket.socket:
    parts = urlsplit(service.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=5)


def _request(path: str, method: str = "GET", version: str = "HTTP/1.1", **headers: str) -> bytes:
    lines = [f"{method} {path} {version}", "Host: mail.example", "User-Agent: Mozilla/5.0 (Macintosh)"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Reader:
    """Reads HTTP/1.1 responses (with Content-Length) off one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.data = sock, b""

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.data:
            self._more()
        head, self.data = self.data.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.data) < length:
            self._more()
        body, self.data = self.data[:length], self.data[length:]
        return int(status_line.split()[1]), headers, body

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.data += chunk


def _path(url: str) -> str:
    return urlsplit(url).path


def _events(env, campaign_id: int, count: int, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        with db.read(env.engine) as conn:
            rows = [dict(r) for r in conn.execute(
                select(tracking_events).where(tracking_events.c.campaign_id == campaign_id)
                .order_by(tracking_events.c.id)).mappings()]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_tracking_and_app_requests_take_turns_on_one_connection(env, service, settings):
    with _connect(service) as sock:
        reader = Reader(sock)
        answers = []
        for path in (_path(tokens.open_url(settings, 90, 1, 1)), "/healthz",
                     _path(tokens.open_url(settings, 90, 2, 1)), _path(tokens.click_url(settings, 90, 3, 1, 0))[:-2] + "AA",
                     "/healthz", _path(tokens.open_url(settings, 90, 4, 1))):
            sock.sendall(_request(path))
            answers.append(reader.response())
    assert [status for status, _, _ in answers] == [200, 200, 200, 404, 200, 200]
    assert [answers[i][2][:6] for i in (0, 2, 5)] == [b"GIF89a"] * 3
    assert answers[1][2] == answers[4][2] and b"ok" in answers[1][2]
    assert answers[3][2] == b"Not found\n" and "location" not in answers[3][1]
    assert all(headers["connection"] == "keep-alive" and headers["x-content-type-options"] == "nosniff"
               for _, headers, _ in answers)
    rows = _events(env, 90, 3)
    assert [(r["kind"], r["subscriber_id"], r["machine"]) for r in rows] == [("open", 1, False), ("open", 2, False),
                                                                             ("open", 4, False)]


def test_pipelined_split_and_http10_requests_are_answered(env, service, settings):
    first, second, third, fourth = (_request(_path(tokens.open_url(settings, 91, s, 1))) for s in (1, 2, 3, 4))
    with _connect(service) as sock:
        reader = Reader(sock)
        sock.sendall(first + second)                      # two at once
        assert [reader.response()[0] for _ in range(2)] == [200, 200]
        sock.sendall(third[:20])                          # one in two pieces
        time.sleep(0.3)
        sock.sendall(third[20:])
        assert reader.response()[0] == 200
    with _connect(service) as sock:
        sock.sendall(fourth.replace(b"HTTP/1.1", b"HTTP/1.0"))
        assert Reader(sock).response()[0] == 200
    assert sorted(r["subscriber_id"] for r in _events(env, 91, 4)) == [1, 2, 3, 4]


def test_connection_close_is_honoured(env, service, settings):
    with _connect(service) as sock:
        sock.sendall(_request(_path(tokens.open_url(settings, 92, 1, 1)), Connection="TE, close"))
        reader = Reader(sock)
        status, headers, _ = reader.response()
        assert (status, headers["connection"]) == (200, "close")
        assert sock.recv(1024) == b""                     # the server closed it
    assert len(_events(env, 92, 1)) == 1


def test_head_and_forwarded_address_are_recorded(env, service, settings):
    with _connect(service) as sock:
        reader = Reader(sock)
        sock.sendall(_request(_path(tokens.open_url(settings, 93, 1, 1)), method="HEAD"))
        status, headers, body = reader.response(head_only=True)
        assert (status, headers["content-length"], body) == (200, "43", b"")
        sock.sendall(_request(_path(tokens.open_url(settings, 93, 2, 1)), X_Forwarded_For="203.0.113.7"))
        assert reader.response()[0] == 200
    rows = _events(env, 93, 2)
    assert [(r["machine"], r["reason"]) for r in rows] == [(True, "head"), (False, None)]
    assert rows[1]["ip"] == "203.0.113.7"
