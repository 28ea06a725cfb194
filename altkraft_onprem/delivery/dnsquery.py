"""What the DNS checks are made of: a result (Check, with its statuses) and a small resolver
that tells "no such record" from "the server did not answer" (TempError)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename

STATUSES = ("pass", "warn", "unknown", "missing", "fail")
STATUS_ORDER = {status: rank for rank, status in enumerate(STATUSES)}


@dataclass
class Check:
    status: str           # one of STATUSES
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "detail": self.detail, "fix": self.fix}


class TempError(Exception):
    """The DNS server did not answer (timeout, SERVFAIL, refused)."""


def parse_nameserver(text: str) -> tuple[str, int]:
    """"H", "H:P", "[V6]:P" or a bare IPv6 address -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, "53"
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(f"nameserver {text!r}: expected IP[:PORT], e.g. 192.0.2.53:53") from None
    if not 0 < number < 65536:
        raise ValueError(f"nameserver {text!r}: port out of range")
    return host, number


class RunResolver(dns.resolver.Resolver):
    """A resolver for one run of checks that gives up on its servers once they time out: the
    rest of the run answers "could not check" at once, so a dead DNS server costs one timeout
    per run, not one per query (never a hung page). Every lookup of the run goes through it:
    ours, pyspf's and checkdmarc's."""

    timed_out = False

    def resolve(self, *args, **kwargs):
        if self.timed_out:
            raise dns.resolver.LifetimeTimeout(timeout=0.0, errors=[])
        try:
            return super().resolve(*args, **kwargs)
        except dns.exception.Timeout:
            self.timed_out = True
            raise


class Dns:
    """Small dnspython wrapper: empty list for NXDOMAIN/no data, TempError otherwise."""

    def __init__(self, nameservers: list[str] | tuple[str, ...] = (), timeout: float = 3.0):
        if nameservers:
            self.resolver = RunResolver(configure=False)
            self.resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(n))
                                         for n in nameservers]
        else:
            self.resolver = RunResolver()
        self.resolver.lifetime = timeout
        self.resolver.timeout = timeout
        # One run asks some names many times (SPF once per sending IP, the HELO name per IP):
        # answers are kept for the life of this resolver, i.e. one run of checks.
        self.resolver.cache = dns.resolver.Cache()

    def _query(self, name: str, rdtype: str) -> list:
        try:
            return list(self.resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoRootSOA) as exc:
            raise TempError(f"{rdtype} {name}: {type(exc).__name__}") from None
        except dns.name.EmptyLabel:
            return []

    def txt(self, name: str) -> list[str]:
        return [b"".join(r.strings).decode("utf-8", "replace") for r in self._query(name, "TXT")]

    def addresses(self, name: str) -> list[str]:
        return [r.address for t in ("A", "AAAA") for r in self._query(name, t)]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return sorted((r.preference, r.exchange.to_text().rstrip(".")) for r in self._query(name, "MX"))

    def ptr(self, ip: str) -> list[str]:
        return [r.target.to_text().rstrip(".")
                for r in self._query(dns.reversename.from_address(ip).to_text(), "PTR")]
