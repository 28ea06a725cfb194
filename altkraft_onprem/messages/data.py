"""External JSON data for `{{ data.… }}`: a pasted document, a URL fetched once at send start,
or a per-subscriber URL template (fetched with a concurrency limit and a cache).

Fetching follows the SSRF rules of http_guard with this domain's settings
(messages.data_allowed_hosts, messages.data_allowed_private_networks, the time and size limits).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from altkraft_onprem import http_guard
from altkraft_onprem.config import Settings
from altkraft_onprem.errors import ServiceError

from .sandbox import MessageEnvironment


class DataFetchError(ServiceError):
    """External data could not be loaded; the message says which URL and why."""


def policy(settings: Settings) -> http_guard.Policy:
    try:
        return http_guard.Policy(
            networks_setting="messages.data_allowed_private_networks",
            allowed_networks=settings["messages.data_allowed_private_networks"],
            hosts_setting="messages.data_allowed_hosts",
            allowed_hosts=settings["messages.data_allowed_hosts"],
            timeout=settings["messages.data_timeout_seconds"],
            max_bytes=settings["messages.data_max_kb"] * 1024,
            user_agent="ALTKRAFT-OnPremise/1 (external data)")
    except http_guard.Refused as exc:
        raise DataFetchError.like(exc, "data_source") from None


def fetch_json(settings: Settings, url: str) -> Any:
    """GET a JSON document under the SSRF rules and limits; raises DataFetchError."""
    try:
        response = http_guard.request(policy(settings), "GET", url,
                                      headers={"Accept": "application/json"})
    except http_guard.Refused as exc:
        raise DataFetchError.like(exc, "data_source") from None
    if response.status != 200:
        raise DataFetchError("%(url)s: the server answered HTTP %(status)s", "data_source", url=url, status=response.status)
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise DataFetchError("%(url)s: not valid JSON (%(exc)s)", "data_source", url=url, exc=exc) from None


def shared_data(settings: Settings, source: dict[str, Any] | None) -> dict[str, Any]:
    """The `data` every recipient sees: a pasted document or a URL fetched now (send start)."""
    if not source:
        return {}
    if source["kind"] == "document":
        return source["document"]
    if source["kind"] == "url":
        document = fetch_json(settings, source["url"])
        return document if isinstance(document, dict) else {"items": document}
    return {}


def per_subscriber_data(settings: Settings, source: dict[str, Any] | None,
                        contexts: dict[int, dict[str, Any]],
                        cache: dict[str, Any] | None = None) -> dict[int, Any]:
    """For a per-subscriber URL template: {subscriber id: document}; one failure fails all
    (a campaign must not go out half-personalised). Each distinct URL is fetched once; pass
    the same `cache` dict for every batch of a send to fetch it once per send."""
    if not source or source.get("kind") != "per_subscriber":
        return {}

    try:
        template = MessageEnvironment(autoescape=False).from_string(source["url_template"])
        urls = {sid: template.render(context).strip() for sid, context in contexts.items()}
    except Exception as exc:  # noqa: BLE001 - a template error is the marketer's to fix
        raise DataFetchError("the data URL template failed: %(exc)s", "data_source.url_template", exc=exc) from None
    cache = {} if cache is None else cache
    unique = sorted(set(urls.values()) - set(cache))
    with ThreadPoolExecutor(max_workers=settings["messages.data_concurrency"]) as pool:
        for url, document in zip(unique, pool.map(lambda u: fetch_json(settings, u), unique), strict=True):
            cache[url] = document if isinstance(document, dict) else {"items": document}
    return {sid: cache[url] for sid, url in urls.items()}
