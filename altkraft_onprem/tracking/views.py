"""Public tracking endpoints: /t/o/<token> open pixel, /t/r/<token> reading-time stream,
/t/c/<token> click redirect. No login; a token that does not verify gets a plain 404.

Each answered request appends one event to the process's buffer (see buffer.py); nothing
here waits for the database except the first click on a (campaign, version), which compiles
its link table once.
"""
from __future__ import annotations

import select as selectlib
import socket
import time

from flask import Blueprint, Response, request

from altkraft_onprem import db
from altkraft_onprem.access.policy import public
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow

from . import links, tokens
from .buffer import BUFFER, stopping
from .models import (
    CLICK,
    HEAD,
    HONEYPOT,
    MPP,
    OPEN,
    READ,
    SCANNER,
    UNMEASURABLE,
    anonymise_ip,
    classify_read,
    image_fetch_label,
    scanner_agent,
)

blueprint = Blueprint("tracking", __name__, url_prefix="/t")

# A 1x1 transparent GIF, split so that the reading-time stream can hold it open: the header and
# palette go first, then a comment extension whose 1-byte sub-blocks trickle out while the
# message is on screen, then the terminator, the image and the trailer.
GIF_HEAD = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
            b"\x21\xf9\x04\x01\x00\x00\x00\x00")
GIF_COMMENT_START = b"\x21\xfe"
GIF_COMMENT_TICK = b"\x01 "
GIF_TAIL = b"\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
PIXEL = GIF_HEAD + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
            "Pragma": "no-cache", "Expires": "0"}
TICK_SECONDS = 2.0     # a byte now and then keeps proxies from timing the stream out


def _not_found() -> Response:
    return Response("Not found\n", status=404, mimetype="text/plain")


def _event(kind: str, target: tokens.Target, *, machine: bool = False, reason: str | None = None,
           **extra) -> dict:
    settings = current_settings()
    ip = request.remote_addr or ""
    if settings["tracking.anonymise_ip"]:
        ip = anonymise_ip(ip)
    row = {"at": utcnow(), "kind": kind, "campaign_id": target.campaign_id,
           "subscriber_id": target.subscriber_id, "version_id": target.version_id,
           "link_index": target.link_index, "machine": machine, "reason": reason,
           "read_seconds": None, "read_class": None,
           "user_agent": request.headers.get("User-Agent", "")[:300], "ip": ip[:64]}
    row.update(extra)
    return row


def _record(row: dict) -> None:
    BUFFER.configure(current_settings())
    BUFFER.add(db.get_engine(), row)


def _image_label() -> str | None:
    settings = current_settings()
    return image_fetch_label(request.headers.get("User-Agent", ""), request.remote_addr or "",
                             tuple(settings["tracking.apple_proxy_networks"]))


@blueprint.route("/o/<token>", methods=["GET"])
@public
def open_pixel(token: str):
    target = tokens.decode(tokens.tracking_key(current_settings()), token, "o")
    if target is None:
        return _not_found()
    label = _image_label()
    if request.method == "HEAD":
        _record(_event(OPEN, target, machine=True, reason=HEAD))
    else:
        _record(_event(OPEN, target, machine=label == MPP, reason=label))
    return Response(PIXEL, mimetype="image/gif", headers=NO_CACHE)


@blueprint.route("/c/<token>", methods=["GET"])
@public
def click(token: str):
    target = tokens.decode(tokens.tracking_key(current_settings()), token, "c")
    if target is None:
        return _not_found()
    if target.link_index == tokens.HONEYPOT_LINK:
        _record(_event(CLICK, target, machine=True, reason=HONEYPOT))
        return Response("\n", status=200, mimetype="text/plain", headers=NO_CACHE)
    with db.read(db.get_engine()) as conn:
        url = links.target(conn, target.campaign_id, target.version_id, target.link_index)
    if url is None:
        return _not_found()
    if request.method == "HEAD":
        _record(_event(CLICK, target, machine=True, reason=HEAD))
    elif scanner_agent(request.headers.get("User-Agent", "")):
        _record(_event(CLICK, target, machine=True, reason=SCANNER))
    else:
        _record(_event(CLICK, target))
    response = Response("", status=302, headers={"Location": url, **NO_CACHE})
    response.autocorrect_location_header = False
    return response


@blueprint.route("/r/<token>", methods=["GET"])
@public
def read_stream(token: str):
    settings = current_settings()
    target = tokens.decode(tokens.tracking_key(settings), token, "r")
    if target is None:
        return _not_found()
    label = _image_label()
    if request.method == "HEAD" or label is not None:
        # A proxy fetches the whole image at once, whenever it likes: the hold time says nothing.
        reason = HEAD if request.method == "HEAD" else label
        _record(_event(READ, target, machine=reason in (HEAD, MPP), reason=reason,
                       read_class=UNMEASURABLE))
        return Response(PIXEL, mimetype="image/gif", headers=NO_CACHE)
    row = _event(READ, target)
    BUFFER.configure(settings)
    engine = db.get_engine()
    sock = request.environ.get("gunicorn.socket")
    cap = settings["tracking.read_cap_seconds"]
    glance, read = settings["tracking.glance_seconds"], settings["tracking.read_seconds"]

    def stream():
        started = time.monotonic()
        ended = None
        try:
            yield GIF_HEAD + GIF_COMMENT_START
            while not stopping.is_set():
                left = cap - (time.monotonic() - started)
                if left <= 0:
                    break
                if _client_gone(sock, min(TICK_SECONDS, left)):
                    ended = time.monotonic()
                    return
                yield GIF_COMMENT_TICK
            ended = time.monotonic()
            yield GIF_TAIL
        finally:
            held = min((ended or time.monotonic()) - started, cap)
            row["read_seconds"] = round(held, 3)
            row["read_class"] = classify_read(held, glance, read)
            BUFFER.add(engine, row)

    headers = {**NO_CACHE, "X-Accel-Buffering": "no"}     # nginx: pass bytes through as they come
    return Response(stream(), mimetype="image/gif", headers=headers, direct_passthrough=True)


def _client_gone(sock, timeout: float) -> bool:
    """Waits up to `timeout`; True when the client closed its side of the connection.
    poll(), not select(): thousands of held streams mean file descriptors above 1024."""
    if sock is None:
        time.sleep(timeout)
        return False
    try:
        poller = selectlib.poll()
        poller.register(sock, selectlib.POLLIN | selectlib.POLLHUP | selectlib.POLLERR)
        events = poller.poll(timeout * 1000)
        if not events:
            return False
        if any(flags & (selectlib.POLLHUP | selectlib.POLLERR | selectlib.POLLNVAL) for _, flags in events):
            return True
        if sock.recv(1, socket.MSG_PEEK) == b"":
            return True
        time.sleep(timeout)       # the client sent more (pipelining): it is still there
        return False
    except (OSError, ValueError):
        return True
