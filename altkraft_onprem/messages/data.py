"""External JSON data for `{{ data.… }}`: a pasted document, a URL fetched once at send start,
or a per-subscriber URL template (fetched with a concurrency limit and a cache).

Fetching is guarded against server-side request forgery: the host must pass the allowlist,
every address it resolves to must be public (or inside a network an administrator allowed),
the connection goes to the address that was checked (no second DNS answer), redirects are
followed by hand and checked the same way, and time and size are limited.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3

from altkraft_onprem.config import Settings
from altkraft_onprem.errors import ServiceError

MAX_REDIRECTS = 3


class DataFetchError(ServiceError):
    """External data could not be loaded; the message says which URL and why."""


def _networks(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for text in settings["messages.data_allowed_private_networks"]:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise DataFetchError(f"messages.data_allowed_private_networks has a bad network: {text!r}",
                                 "data_source") from None
    return networks


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified
                or not address.is_global)


def check_host(settings: Settings, host: str) -> None:
    allowed = settings["messages.data_allowed_hosts"]
    if allowed and not any(fnmatch(host.lower(), pattern.lower()) for pattern in allowed):
        raise DataFetchError(f"{host} is not in messages.data_allowed_hosts", "data_source")


def resolve_checked(settings: Settings, host: str, port: int) -> str:
    """The address to connect to: every address of the host must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DataFetchError(f"cannot resolve {host}: {exc.strerror}", "data_source") from None
    networks = _networks(settings)
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not is_public(address) and not any(address in net for net in networks):
            raise DataFetchError(f"{host} resolves to {address}, a private, loopback or link-local "
                                 "address: refused (an administrator can allow networks in "
                                 "messages.data_allowed_private_networks)", "data_source")
        addresses.append(str(address))
    if not addresses:
        raise DataFetchError(f"{host} has no address", "data_source")
    return addresses[0]


def fetch_json(settings: Settings, url: str) -> Any:
    """GET a JSON document under the SSRF rules and limits; raises DataFetchError."""
    timeout = settings["messages.data_timeout_seconds"]
    limit = settings["messages.data_max_kb"] * 1024
    deadline = time.monotonic() + timeout
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DataFetchError(f"{url}: only http:// and https:// URLs can be fetched", "data_source")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        check_host(settings, host)
        address = resolve_checked(settings, host, port)
        remaining = max(deadline - time.monotonic(), 0.1)
        pool_timeout = urllib3.Timeout(connect=min(remaining, timeout), read=min(remaining, timeout))
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(address, port, timeout=pool_timeout, retries=False,
                                               server_hostname=host, assert_hostname=host,
                                               cert_reqs="CERT_REQUIRED")
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=pool_timeout, retries=False)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = host if parts.port is None else f"{host}:{parts.port}"
        try:
            response = pool.urlopen("GET", path, headers={
                "Host": host_header, "Accept": "application/json",
                "User-Agent": "ALTKRAFT-OnPremise/1 (external data)"},
                redirect=False, preload_content=False, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            raise DataFetchError(f"{url}: {type(exc).__name__}: {exc}", "data_source") from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise DataFetchError(f"{url}: redirect without a Location", "data_source")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise DataFetchError(f"{url}: the server answered HTTP {response.status}", "data_source")
            body = bytearray()
            for chunk in response.stream(64 * 1024):
                body.extend(chunk)
                if len(body) > limit:
                    raise DataFetchError(f"{url}: the document is larger than "
                                         f"{settings['messages.data_max_kb']} KB", "data_source")
                if time.monotonic() > deadline:
                    raise DataFetchError(f"{url}: took longer than {timeout} s", "data_source")
        except urllib3.exceptions.HTTPError as exc:
            raise DataFetchError(f"{url}: {type(exc).__name__}: {exc}", "data_source") from None
        finally:
            response.release_conn()
            pool.close()
        try:
            return json.loads(bytes(body))
        except ValueError as exc:
            raise DataFetchError(f"{url}: not valid JSON ({exc})", "data_source") from None
    raise DataFetchError(f"{url}: more than {MAX_REDIRECTS} redirects", "data_source")


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
    from .sandbox import MessageEnvironment

    try:
        template = MessageEnvironment(autoescape=False).from_string(source["url_template"])
        urls = {sid: template.render(context).strip() for sid, context in contexts.items()}
    except Exception as exc:  # noqa: BLE001 - a template error is the marketer's to fix
        raise DataFetchError(f"the data URL template failed: {exc}", "data_source.url_template") from None
    cache = {} if cache is None else cache
    unique = sorted(set(urls.values()) - set(cache))
    with ThreadPoolExecutor(max_workers=settings["messages.data_concurrency"]) as pool:
        for url, document in zip(unique, pool.map(lambda u: fetch_json(settings, u), unique), strict=True):
            cache[url] = document if isinstance(document, dict) else {"items": document}
    return {sid: cache[url] for sid, url in urls.items()}
