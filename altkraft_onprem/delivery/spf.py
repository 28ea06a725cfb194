"""SPF evaluation (RFC 7208 check_host) with pyspf, asking the company's own DNS servers.

pyspf resolves through one module-level function (`spf.DNSLookup`); it is replaced once by
`_lookup`, which asks the resolver of the evaluation running in this thread (checks run in
parallel threads, each with its own resolver) and falls back to pyspf's own lookup outside
an evaluation. A timeout or SERVFAIL is pyspf's temperror, which `evaluate` raises as
TempError: "could not check", never a failing record.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import dns.exception
import dns.resolver
import spf as pyspf

LOOKUP_LIMIT = pyspf.MAX_LOOKUP     # RFC 7208 4.6.4: 10


class TempError(Exception):
    """The DNS servers did not answer while the record was evaluated."""


@dataclass(frozen=True)
class Result:
    result: str             # pass | fail | softfail | neutral | none | permerror
    explanation: str
    lookups: int


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


_local = threading.local()
_pyspf_lookup = pyspf.DNSLookup


def _lookup(name, qtype, strict=True, timeout=30):
    resolver = getattr(_local, "resolver", None)
    if resolver is None:
        return _pyspf_lookup(name, qtype, strict, timeout)
    try:
        answers = resolver.resolve(name, qtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoRootSOA) as exc:
        raise pyspf.TempError(f"DNS {qtype} {name}: {type(exc).__name__}") from None
    found = []
    for rdata in answers:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


pyspf.DNSLookup = _lookup


def evaluate(resolver: dns.resolver.Resolver, ip: str, domain: str, helo: str) -> Result:
    """check_host(ip, domain, postmaster@domain) as a receiver runs it for a bounce (MAIL
    FROM of our VERP addresses is at `domain`). Raises TempError when DNS did not answer."""
    _local.resolver = resolver
    try:
        query = pyspf.query(i=ip, s=f"postmaster@{domain}", h=helo or domain, timeout=30)
        result, _code, explanation = query.check()
    finally:
        _local.resolver = None
    if result == "temperror":
        raise TempError(explanation)
    return Result(result, explanation, query.lookups)
