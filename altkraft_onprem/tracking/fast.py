"""The open pixel and the click redirect, answered as plain WSGI in front of Flask.

These two are the hot path of the appliance (one request per recipient per open or click,
in bursts after every send). Through Flask each one paid for the request context, the
session cookie, the actor lookup, Babel, CSRF bookkeeping and two hooks, and a click checked
out a database connection even when its link table was cached: ~1,900 requests/s on the
2-core target. Answered here they cost token verification (one HMAC), a dict lookup and a
list append (bench/tracking.py). They need none of what they skip: they are public, set no
cookie, render no template and read no session.

`Tracker` holds the rules (token -> event row + reply) so that the Flask views of the same
URLs (used when the app is called without the fast path, e.g. by the test client) answer
exactly the same way. `FastPath` is installed by the tracking blueprint when it is registered
(see views.py), so every app built by create_app has it; /t/i/ and /t/r/ (held while the
message is on screen) stay Flask views.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine

from altkraft_onprem import metrics
from altkraft_onprem.config import Settings
from altkraft_onprem.db.types import utcnow

from . import links, tokens
from .buffer import BUFFER
from .models import (
    CLICK,
    HEAD,
    HONEYPOT,
    MPP,
    OPEN,
    SCANNER,
    anonymise_ip,
    image_fetch_label,
    scanner_agent,
)

log = logging.getLogger("altkraft.tracking")

PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
         b"\x21\xf9\x04\x01\x00\x00\x00\x00"
         b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
            "Pragma": "no-cache", "Expires": "0"}
# What the app's after_request adds to every response (app.py), kept the same here.
COMMON = [("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "same-origin")]
NOT_FOUND_BODY = b"Not found\n"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


NOT_FOUND = Reply(404, [("Content-Type", "text/plain; charset=utf-8")], NOT_FOUND_BODY)
_PIXEL = Reply(200, [("Content-Type", "image/gif"), *NO_CACHE.items()], PIXEL)
_HONEYPOT = Reply(200, [("Content-Type", "text/plain; charset=utf-8"), *NO_CACHE.items()], b"\n")


class Tracker:
    """Turns an open or click request into (event row in the buffer, reply)."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.key = tokens.tracking_key(settings)
        self.anonymise = settings["tracking.anonymise_ip"]
        self.apple_networks = tuple(settings["tracking.apple_proxy_networks"])
        BUFFER.configure(settings)

    def event(self, kind: str, target: tokens.Target, user_agent: str, ip: str, *,
              machine: bool = False, reason: str | None = None, **extra) -> dict:
        if self.anonymise:
            ip = anonymise_ip(ip)
        row = {"at": utcnow(), "kind": kind, "campaign_id": target.campaign_id,
               "subscriber_id": target.subscriber_id, "version_id": target.version_id,
               "link_index": target.link_index, "machine": machine, "reason": reason,
               "read_seconds": None, "read_class": None,
               "user_agent": user_agent[:300], "ip": ip[:64]}
        row.update(extra)
        return row

    def record(self, row: dict) -> None:
        BUFFER.add(self.engine, row)

    def image_label(self, user_agent: str, ip: str) -> str | None:
        return image_fetch_label(user_agent, ip, self.apple_networks)

    def open(self, token: str, method: str, user_agent: str, ip: str) -> Reply:
        target = tokens.decode(self.key, token, "o")
        if target is None:
            return NOT_FOUND
        self.record_open(target, method, user_agent, ip)
        return _PIXEL

    def record_open(self, target: tokens.Target, method: str, user_agent: str, ip: str) -> None:
        """The open of an image request (the open pixel's, the tracking image's), labelled."""
        if method == "HEAD":
            self.record(self.event(OPEN, target, user_agent, ip, machine=True, reason=HEAD))
        else:
            label = self.image_label(user_agent, ip)
            self.record(self.event(OPEN, target, user_agent, ip, machine=label == MPP, reason=label))

    def click(self, token: str, method: str, user_agent: str, ip: str) -> Reply:
        target = tokens.decode(self.key, token, "c")
        if target is None:
            return NOT_FOUND
        if target.link_index == tokens.HONEYPOT_LINK:
            self.record(self.event(CLICK, target, user_agent, ip, machine=True, reason=HONEYPOT))
            return _HONEYPOT
        url = links.target(self.engine, target.campaign_id, target.version_id, target.link_index)
        if url is None:
            return NOT_FOUND
        if method == "HEAD":
            self.record(self.event(CLICK, target, user_agent, ip, machine=True, reason=HEAD))
        elif scanner_agent(user_agent):
            self.record(self.event(CLICK, target, user_agent, ip, machine=True, reason=SCANNER))
        else:
            self.record(self.event(CLICK, target, user_agent, ip))
        return Reply(302, [("Location", url), ("Content-Type", "text/plain; charset=utf-8"), *NO_CACHE.items()])


_STATUS = {200: "200 OK", 302: "302 Found", 404: "404 NOT FOUND", 503: "503 SERVICE UNAVAILABLE"}
_ROUTES = {"/t/o/": Tracker.open, "/t/c/": Tracker.click}


class FastPath:
    """WSGI middleware: GET/HEAD /t/o/<token> and /t/c/<token> here, everything else to `app`."""

    def __init__(self, app, tracker: Tracker, trusted_proxies: int = 0) -> None:
        self.app = app
        self.tracker = tracker
        self.answer = self._answer
        if trusted_proxies:
            # The client's address as the proxies report it, the same way the app reads it.
            from werkzeug.middleware.proxy_fix import ProxyFix

            self.answer = ProxyFix(self._answer, x_for=trusted_proxies, x_proto=trusted_proxies,
                                   x_host=trusted_proxies)
        self._counters: dict = {}

    def __call__(self, environ, start_response):
        if self.serves(environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")):
            BUFFER.wait_for_room()      # a request thread may wait; the event loop never calls this
            return self.answer(environ, start_response)
        return self.app(environ, start_response)

    @staticmethod
    def serves(path: str, method: str | None) -> bool:
        return path[:5] in _ROUTES and method in ("GET", "HEAD") and "/" not in path[5:]

    def _answer(self, environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        try:
            reply = _ROUTES[path[:5]](self.tracker, path[5:], method,
                                      environ.get("HTTP_USER_AGENT", ""), environ.get("REMOTE_ADDR") or "")
        except Exception:  # noqa: BLE001 - e.g. the database is down on a link-table miss
            log.exception("tracking request %s failed", path[:5])
            reply = Reply(503, [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5")],
                          b"Try again later\n")
        self._count(method, path[:5], reply.status)
        start_response(_STATUS[reply.status], [*reply.headers, *COMMON,
                                               ("Content-Length", str(len(reply.body)))])
        return [b""] if method == "HEAD" else [reply.body]

    def _count(self, method: str, prefix: str, status: int) -> None:
        """The request counter the app keeps for its other routes (/metrics)."""
        key = (method, prefix, status)
        counter = self._counters.get(key)
        if counter is None:
            endpoint = "tracking.open_pixel" if prefix == "/t/o/" else "tracking.click"
            counter = self._counters[key] = metrics._get()["requests"].labels(method, endpoint, str(status))
        counter.inc()


def install(app) -> None:
    """Put the fast path in front of an app (called once per app by the tracking blueprint)."""
    settings = app.config["ALTKRAFT_SETTINGS"]
    tracker = Tracker(settings, app.extensions["altkraft.engine"])
    app.extensions["altkraft.tracker"] = tracker
    app.wsgi_app = FastPath(app.wsgi_app, tracker, settings["server.trusted_proxies"])
