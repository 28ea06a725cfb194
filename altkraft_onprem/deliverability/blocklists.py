"""DNS blocklist lookups (RFC 5782): a sending IP in IP lists (Spamhaus ZEN, Barracuda,
SpamCop, ...), a domain in domain lists (Spamhaus DBL, SURBL).

An address in 127.0.0.0/8 means listed — except the lists' own error answers (Spamhaus
127.255.255.x: query through a public resolver, over the limit, bad query; DBL 127.0.1.255;
SURBL 127.0.0.1: access blocked), which mean "could not check", like a timeout.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from altkraft_onprem.delivery.dnsquery import Check, Dns, TempError

_LISTED = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = (ipaddress.ip_network("127.255.255.0/24"), ipaddress.ip_network("127.0.1.255/32"),
            ipaddress.ip_network("127.0.0.1/32"))


@dataclass(frozen=True)
class Listing:
    subject: str            # an IP address or a domain
    zone: str
    status: str             # pass (not listed) | fail (listed) | unknown (could not check)
    detail: str


def query_name(subject: str, zone: str) -> str:
    """The name asked: reversed octets (IPv4) or nibbles (IPv6) of an IP, else the domain."""
    try:
        address = ipaddress.ip_address(subject)
    except ValueError:
        return f"{subject.rstrip('.')}.{zone}"
    if address.version == 4:
        return ".".join(reversed(str(address).split("."))) + f".{zone}"
    return ".".join(reversed(address.exploded.replace(":", ""))) + f".{zone}"


def look_up(resolver: Dns, subject: str, zone: str) -> Listing:
    name = query_name(subject, zone)
    try:
        answers = [a for a in resolver.addresses(name) if ":" not in a]
    except TempError as exc:
        return Listing(subject, zone, "unknown", f"could not check {zone}: DNS did not answer ({exc})")
    if not answers:
        return Listing(subject, zone, "pass", f"not listed on {zone}")
    codes = [ipaddress.ip_address(a) for a in answers]
    if all(c not in _LISTED or any(c in net for net in _REFUSED) for c in codes):
        return Listing(subject, zone, "unknown", f"could not check: {zone} refused the query "
                       f"(answer {', '.join(answers)}; some lists answer only queries from a "
                       "resolver of your own, or with a data-feed key)")
    try:
        reason = "; ".join(resolver.txt(name))[:300]
    except TempError:
        reason = ""
    return Listing(subject, zone, "fail", f"{subject} is listed on {zone} ({', '.join(answers)})"
                   + (f": {reason}" if reason else ""))


def summary(listings: list[Listing]) -> Check:
    """One result for several lookups: listed anywhere fails, else any unknown is unknown."""
    listed = [x for x in listings if x.status == "fail"]
    if listed:
        return Check("fail", "; ".join(x.detail for x in listed))
    unknown = [x for x in listings if x.status == "unknown"]
    if unknown:
        return Check("unknown", "; ".join(x.detail for x in unknown))
    subjects = sorted({x.subject for x in listings})
    zones = sorted({x.zone for x in listings})
    if not listings:
        return Check("warn", "no blocklist configured (deliverability.domain_blocklists)")
    return Check("pass", f"{', '.join(subjects)} not listed on {', '.join(zones)}")
