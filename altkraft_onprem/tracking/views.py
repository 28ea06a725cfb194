"""Public tracking endpoints: /t/i/<token> tracking image (the open when it is requested, the
reading time while its response is held), /t/c/<token> click redirect; for mail sent before
the tracking image, /t/o/<token> open pixel and /t/r/<token> reading-time stream. No login; a
token that does not verify gets a plain 404.

Each answered request appends one event to the process's buffer (see buffer.py); nothing
here waits for the database except the first click on a (campaign, version), which compiles
its link table once.
"""
from __future__ import annotations

import select as selectlib
import socket
import time

from flask import Blueprint, Response, current_app, request

from altkraft_onprem.access.policy import public

from . import fast, tokens
from .buffer import stopping
from .fast import NO_CACHE, PIXEL, Reply, Tracker
from .models import HEAD, MPP, READ, UNMEASURABLE, classify_read

blueprint = Blueprint("tracking", __name__, url_prefix="/t")
blueprint.record_once(lambda state: fast.install(state.app))

# A 1x1 transparent GIF, split so that the reading-time stream can hold it open: the header and
# palette go first, then a comment extension whose 1-byte sub-blocks trickle out while the
# message is on screen, then the terminator, the image and the trailer.
GIF_HEAD = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
            b"\x21\xf9\x04\x01\x00\x00\x00\x00")
GIF_COMMENT_START = b"\x21\xfe"
GIF_COMMENT_TICK = b"\x01 "
GIF_TAIL = b"\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b"
assert PIXEL == GIF_HEAD + GIF_TAIL[1:]      # the held stream ends as the same image
TICK_SECONDS = 2.0     # a byte now and then keeps proxies from timing the stream out


def _tracker() -> Tracker:
    return current_app.extensions["altkraft.tracker"]


def _client() -> tuple[str, str]:
    return request.headers.get("User-Agent", ""), request.remote_addr or ""


def _response(reply: Reply) -> Response:
    response = Response(reply.body, status=reply.status, headers=reply.headers)
    response.autocorrect_location_header = False
    return response


# The same URLs are answered by fast.FastPath before Flask sees them; these views give them
# their place in the route map and answer when the app is called without the fast path.
@blueprint.route("/o/<token>", methods=["GET"])
@public
def open_pixel(token: str):
    return _response(_tracker().open(token, request.method, *_client()))


@blueprint.route("/c/<token>", methods=["GET"])
@public
def click(token: str):
    return _response(_tracker().click(token, request.method, *_client()))


@blueprint.route("/i/<token>", methods=["GET"])
@public
def tracking_image(token: str):
    """One image for both: the open is recorded as the request arrives (a person who closes
    the message at once has opened it), then the response is held for the reading time."""
    tracker = _tracker()
    target = tokens.decode(tracker.key, token, "i")
    if target is None:
        return _response(fast.NOT_FOUND)
    tracker.record_open(target, request.method, *_client())
    return _held_image(tracker, target)


@blueprint.route("/r/<token>", methods=["GET"])
@public
def read_stream(token: str):
    """The reading-time image of mail sent before /t/i/ (its open pixel is /t/o/)."""
    tracker = _tracker()
    target = tokens.decode(tracker.key, token, "r")
    if target is None:
        return _response(fast.NOT_FOUND)
    return _held_image(tracker, target)


def _held_image(tracker: Tracker, target: tokens.Target) -> Response:
    """A 1x1 GIF held open while the client shows it; the hold time becomes a read event."""
    settings = tracker.settings
    user_agent, ip = _client()
    label = tracker.image_label(user_agent, ip)
    if request.method == "HEAD" or label is not None:
        # A proxy fetches the whole image at once, whenever it likes: the hold time says nothing.
        reason = HEAD if request.method == "HEAD" else label
        tracker.record(tracker.event(READ, target, user_agent, ip, machine=reason in (HEAD, MPP),
                                     reason=reason, read_class=UNMEASURABLE))
        return Response(PIXEL, mimetype="image/gif", headers=NO_CACHE)
    row = tracker.event(READ, target, user_agent, ip)
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
            tracker.record(row)

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
