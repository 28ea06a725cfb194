"""Outgoing HTTP to addresses that users supply (external message data, webhooks, workflow
HTTP nodes), guarded against server-side request forgery — the one place these rules live.

The host must pass the allowlist (when one is set); every address it resolves to must be
public, or inside a network an administrator allowed; the connection goes to the address
that was checked (no second DNS answer); redirects, when followed, are checked the same way;
time and size are limited.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from urllib.parse import urljoin, urlsplit

import urllib3

from altkraft_onprem.errors import Translatable

MAX_REDIRECTS = 3
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(Translatable, Exception):
    """The URL may not be fetched, or fetching it failed; the message says why (a template with
    named values, translated where it is shown)."""

    def __init__(self, message: str, **values: object):
        self._set_text(message, values)
        super().__init__(self.message)


class Unreachable(Refused):
    """The rules allowed the request but the network did not carry it (no answer in time, a
    refused connection, a name that does not resolve now): worth another try later."""


@dataclass(frozen=True)
class Policy:
    """Where requests may go and how long they may take. The setting names are quoted in
    refusals, so an administrator knows what to change."""

    networks_setting: str
    allowed_networks: Sequence[str] = ()
    hosts_setting: str = ""
    allowed_hosts: Sequence[str] = ()
    timeout: float = 10.0
    max_bytes: int = 1024 * 1024
    fail_when_larger: bool = True       # else the body is cut at max_bytes
    user_agent: str = "ALTKRAFT-OnPremise/1"
    networks: tuple[Network, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        parsed = []
        for text in self.allowed_networks:
            try:
                parsed.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise Refused("%(networks_setting)s has a bad network: %(text)s", networks_setting=self.networks_setting, text=repr(text)) from None
        object.__setattr__(self, "networks", tuple(parsed))


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified
                or not address.is_global)


def check_host(policy: Policy, host: str) -> None:
    allowed = policy.allowed_hosts
    if allowed and not any(fnmatch(host.lower(), pattern.lower()) for pattern in allowed):
        raise Refused("%(host)s is not in %(hosts_setting)s", host=host, hosts_setting=policy.hosts_setting)


def resolve_checked(policy: Policy, host: str, port: int) -> str:
    """The address to connect to: every address of the host must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Unreachable("cannot resolve %(host)s: %(strerror)s", host=host, strerror=exc.strerror) from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not is_public(address) and not any(address in net for net in policy.networks):
            raise Refused("%(host)s resolves to %(address)s, a private, loopback or link-local "
                          "address: refused (an administrator can allow networks in "
                          "%(networks_setting)s)", host=host, address=address, networks_setting=policy.networks_setting)
        addresses.append(str(address))
    if not addresses:
        raise Refused("%(host)s has no address", host=host)
    return addresses[0]


def check_url(policy: Policy, url: str) -> None:
    """Refuses a URL that could never be fetched (scheme, host, addresses) — for forms that
    save a URL, so the mistake shows when it is made rather than at the first request."""
    parts = _parts(url)
    check_host(policy, parts.hostname)
    resolve_checked(policy, parts.hostname, _port(parts))


def _parts(url: str):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("%(url)s: only http:// and https:// URLs can be used", url=url)
    return parts


def _port(parts) -> int:
    try:
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Refused("%(url)s: the port is not a number from 1 to 65535", url=parts.geturl()) from None


def request(policy: Policy, method: str, url: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None, follow_redirects: bool = True) -> Response:
    """One request under the rules; a 3xx is followed (GET only) or returned as it is.
    Raises Refused for what the rules forbid and for network failures."""
    deadline = time.monotonic() + policy.timeout
    for _hop in range(MAX_REDIRECTS + 1):
        parts = _parts(url)
        host, port = parts.hostname, _port(parts)
        check_host(policy, host)
        address = resolve_checked(policy, host, port)
        response = _once(policy, method, parts, address, port, body, headers or {}, deadline)
        if follow_redirects and response.status in (301, 302, 303, 307, 308):
            location = response.headers.get("location")
            if not location:
                raise Refused("%(url)s: redirect without a Location", url=url)
            url = urljoin(url, location)
            continue
        return response
    raise Refused("%(url)s: more than %(max_redirects)s redirects", url=url, max_redirects=MAX_REDIRECTS)


def _once(policy: Policy, method: str, parts, address: str, port: int, body, headers,
          deadline: float) -> Response:
    host = parts.hostname
    url = parts.geturl()
    remaining = max(deadline - time.monotonic(), 0.1)
    pool_timeout = urllib3.Timeout(connect=min(remaining, policy.timeout),
                                   read=min(remaining, policy.timeout))
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(address, port, timeout=pool_timeout, retries=False,
                                           server_hostname=host, assert_hostname=host,
                                           cert_reqs="CERT_REQUIRED")
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=pool_timeout, retries=False)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = {"Host": host if parts.port is None else f"{host}:{parts.port}",
            "User-Agent": policy.user_agent, **headers}
    try:
        response = pool.urlopen(method, path, body=body, headers=sent, redirect=False,
                                preload_content=False, retries=False)
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        raise Unreachable("%(url)s: %(name)s: %(exc)s", url=url, name=type(exc).__name__, exc=exc) from None
    try:
        received = bytearray()
        truncated = False
        for chunk in response.stream(64 * 1024):
            received.extend(chunk)
            if len(received) > policy.max_bytes:
                if policy.fail_when_larger:
                    raise Refused("%(url)s: the answer is larger than %(max_bytes)s KB", url=url, max_bytes=policy.max_bytes // 1024)
                del received[policy.max_bytes:]
                truncated = True
                break
            if time.monotonic() > deadline:
                raise Unreachable("%(url)s: took longer than %(timeout)s s", url=url, timeout=format(policy.timeout, 'g'))
        return Response(response.status, {k.lower(): v for k, v in response.headers.items()},
                        bytes(received), truncated)
    except urllib3.exceptions.HTTPError as exc:
        raise Unreachable("%(url)s: %(name)s: %(exc)s", url=url, name=type(exc).__name__, exc=exc) from None
    finally:
        response.release_conn()
        pool.close()
