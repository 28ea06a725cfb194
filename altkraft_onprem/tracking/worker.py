"""The gunicorn worker of `altkraft run`: gthread, plus open pixels and click redirects
answered on the worker's event loop.

gunicorn's gthread worker passes every request between threads three times: its event loop
sees the connection readable and submits it to the thread pool, a pool thread parses and
answers it, and a callback through a pipe gives the kept-alive connection back to the event
loop. For a tracking request whose work is one HMAC and a list append, that round trip (GIL
hand-offs, futex wake-ups, gunicorn's general HTTP parser and WSGI environ) was most of its
~0.5 ms of CPU, and queueing at those hand-offs made the p99 (bench/tracking.py).

Here the event loop peeks at a readable connection first. When the socket holds exactly one
complete, plain `GET`/`HEAD` request for /t/o/<token> or /t/c/<token> (HTTP/1.1, no body, no
continuation lines, no duplicate header), the loop answers it itself through the same
`FastPath` the WSGI stack would call, and the connection stays on the loop. Anything else —
another path, a partial or pipelined request, HTTP/1.0, an odd header, a stopping worker, a
full event buffer (buffer.py: back-pressure) — is left unread and goes the ordinary way, so gunicorn's parser still sees every request this
code is not sure about. New connections wait on the loop for their first bytes (not in a
pool thread) for the same reason.
"""
from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from functools import partial

from gunicorn.util import http_date
from gunicorn.workers.gthread import TConn, ThreadWorker

from .buffer import BUFFER
from .fast import FastPath

# One request, whole: request line, header lines, the blank line — and nothing after it.
_PEEK_BYTES = 8192
_REQUEST_LINE = re.compile(r"(GET|HEAD) (/t/[oc]/[A-Za-z0-9_-]{1,96})(\?[\x21-\x7e]*)? HTTP/1\.1")
_HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x20-\x7e\t]*?)[ \t]*")
# Headers whose presence means the request is not a plain fetch: the ordinary path decides.
_NOT_PLAIN = {"CONTENT_LENGTH", "TRANSFER_ENCODING", "EXPECT", "UPGRADE", "HTTP2_SETTINGS"}


def parse_plain_request(data: bytes) -> tuple[str, str, str, dict[str, str]] | None:
    """(method, path, query, {"HTTP_NAME": value}) of exactly one plain tracking request, or
    None for anything the ordinary HTTP path should handle."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or end + 4 != len(data):
        return None
    try:
        lines = data[:end].decode("ascii").split("\r\n")
    except UnicodeDecodeError:
        return None
    line = _REQUEST_LINE.fullmatch(lines[0])
    if line is None:
        return None
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        header = _HEADER.fullmatch(raw)
        if header is None:
            return None
        key = header.group(1).upper().replace("-", "_")
        if key in headers or key in _NOT_PLAIN:
            return None
        headers[key] = header.group(2)
    return line.group(1), line.group(2), (line.group(3) or "")[1:], headers


class _Date:
    """The Date header, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self.second:
            self.second, self.value = now, http_date(now)
        return self.value


class TrackingWorker(ThreadWorker):
    fast_path: FastPath | None = None

    def run(self) -> None:
        # create_app put the FastPath in front of the Flask app (tracking/fast.py install)
        wsgi_app = getattr(self.wsgi, "wsgi_app", None)
        self.fast_path = wsgi_app if isinstance(wsgi_app, FastPath) else None
        self.date = _Date()
        super().run()

    def accept(self, listener) -> None:
        """Like gthread's, but the first request is awaited on the event loop, where a
        tracking request can be answered at once (gthread waits for it in a pool thread)."""
        try:
            client, address = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, address, listener.getsockname())   # non-blocking
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def on_pending_socket_readable(self, conn, client) -> None:
        if not self._answer_here(conn, self.pending_conns):
            super().on_pending_socket_readable(conn, client)

    def on_client_socket_readable(self, conn, client) -> None:
        if not self._answer_here(conn, self.keepalived_conns):
            super().on_client_socket_readable(conn, client)

    def _answer_here(self, conn, waiting) -> bool:
        """Answer one plain tracking request on the event loop; False: not one, nothing read.

        After an answer the connection stays registered in `waiting` (or is closed)."""
        if self.fast_path is None or not self.alive or not BUFFER.has_room():
            return False                 # (a full buffer: a pool thread waits for room instead)
        try:
            data = conn.sock.recv(_PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False                 # the ordinary path notices and closes it
        request = parse_plain_request(data) if data else None
        if request is None:
            return False
        method, path, query, headers = request
        if not self.fast_path.serves(path, method):
            return False
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "SERVER_NAME": conn.server[0] if isinstance(conn.server, tuple) else "",
                   "SERVER_PORT": str(conn.server[1]) if isinstance(conn.server, tuple) else "",
                   "REMOTE_ADDR": conn.client[0] if isinstance(conn.client, tuple) else "",
                   **{"HTTP_" + key: value for key, value in headers.items()}}
        reply: list = []
        body = b"".join(self.fast_path.answer(environ, lambda status, hdrs: reply.extend((status, hdrs))))
        close = "close" in (option.strip() for option in headers.get("CONNECTION", "").lower().split(","))
        status, reply_headers = reply
        head = [f"HTTP/1.1 {status}", "Server: gunicorn", f"Date: {self.date()}",
                "Connection: close" if close else "Connection: keep-alive",
                *(f"{name}: {value}" for name, value in reply_headers)]
        response = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            conn.sock.recv(len(data))             # consume the request just answered
            sent = conn.sock.send(response)
            if sent < len(response):              # a full send buffer: rare for ~400 bytes
                conn.sock.settimeout(self.cfg.timeout)
                conn.sock.sendall(response[sent:])
                conn.sock.setblocking(False)
        except OSError:
            close = True
        waiting.remove(conn)
        if close:
            self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()
        else:
            # idle again: its timeout starts over, and the deque stays in timeout order (the
            # murder_* sweeps stop at the first entry that has not expired)
            conn.timeout = time.monotonic() + self.cfg.keepalive
            waiting.append(conn)
        return True
