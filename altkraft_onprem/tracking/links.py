"""Where a click goes: the link of the message version the recipient got, plus the campaign's
UTM marks. Never taken from the request (no open redirect).

Compiled once per (campaign, version) and cached in the process: a click costs a dict lookup.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import Engine

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns

_CACHE: OrderedDict[tuple[int, int], dict[int, str]] = OrderedDict()
_LOCK = threading.Lock()
_MAX = 256


def target(engine: Engine, campaign_id: int, version_id: int, link_index: int) -> str | None:
    """The URL of a click, or None; reads the database only on the first click of a version."""
    key = (campaign_id, version_id)
    with _LOCK:
        links = _CACHE.get(key)
        if links is not None:
            _CACHE.move_to_end(key)
    if links is None:
        with db.read(engine) as conn:
            links = dict(campaigns.tracking_targets(conn, campaign_id, version_id))
        with _LOCK:
            _CACHE[key] = links
            while len(_CACHE) > _MAX:
                _CACHE.popitem(last=False)
    url = links.get(link_index)
    if url is None or not url.lower().startswith(("http://", "https://")):
        return None
    return url


def forget(campaign_id: int | None = None) -> None:
    """Drop cached targets (tests; a campaign's UTM changed)."""
    with _LOCK:
        for key in [k for k in _CACHE if campaign_id is None or k[0] == campaign_id]:
            del _CACHE[key]
