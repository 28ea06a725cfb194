"""SPF evaluation (RFC 7208 check_host) against the company's own DNS.

Kept apart from the other DNS checks because it is a small interpreter of its own: macros,
mechanisms, modifiers, and the 10-lookup / 2-void-lookup limits that receivers enforce.
The resolver is dnscheck.Dns (txt, addresses, mx, ptr).
"""
from __future__ import annotations

import ipaddress
import re

LOOKUP_LIMIT = 10     # RFC 7208 4.6.4
VOID_LIMIT = 2


class SpfPermError(Exception):
    pass


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


_MACRO = re.compile(r"%\{([slodiphcrtv])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-", re.IGNORECASE)


class Evaluation:
    """One run of RFC 7208 check_host() for one sending IP, counting DNS-querying terms."""

    def __init__(self, resolver, ip: str, sender_domain: str = ""):
        self.resolver, self.ip = resolver, ipaddress.ip_address(ip)
        self.sender = f"postmaster@{sender_domain}"     # what a bounce's MAIL FROM stands for
        self.lookups = 0
        self.voids = 0

    def expand(self, spec: str, domain: str) -> str:
        """RFC 7208 section 7 macros (%{i}, %{d}, %{s}, … with digits, r and delimiters)."""
        def one(match: re.Match) -> str:
            whole = match.group(0)
            if whole in ("%%", "%_", "%-"):
                return {"%%": "%", "%_": " ", "%-": "%20"}[whole]
            letter, digits, reverse, delimiters = match.groups()
            if self.ip.version == 4:
                address = str(self.ip)
            else:
                address = ".".join(self.ip.exploded.replace(":", ""))
            value = {"s": self.sender, "l": self.sender.split("@")[0], "o": self.sender.split("@")[1],
                     "d": domain, "i": address, "c": str(self.ip), "p": "unknown",
                     "v": "in-addr" if self.ip.version == 4 else "ip6", "h": domain,
                     "r": "unknown", "t": "0"}[letter.lower()]
            parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                parts = parts[-int(digits):]
            return ".".join(parts)
        return _MACRO.sub(one, spec) if "%" in spec else spec

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise SpfPermError(f"more than {LOOKUP_LIMIT} DNS lookups (RFC 7208 4.6.4)")

    def _void(self, answers: list) -> list:
        if not answers:
            self.voids += 1
            if self.voids > VOID_LIMIT:
                raise SpfPermError(f"more than {VOID_LIMIT} lookups returned nothing")
        return answers

    def record(self, domain: str) -> str | None:
        records = [t for t in self.resolver.txt(domain) if is_spf(t)]
        if len(records) > 1:
            raise SpfPermError(f"{domain} has {len(records)} SPF records; exactly one is allowed")
        return records[0] if records else None

    def _in(self, addresses: list[str], cidr4: int, cidr6: int) -> bool:
        prefix = cidr4 if self.ip.version == 4 else cidr6
        for address in addresses:
            network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
            if network.version == self.ip.version and self.ip in network:
                return True
        return False

    def check(self, domain: str, chain: tuple[str, ...] = ()) -> str:
        if domain.lower() in chain:
            raise SpfPermError(f"include loop: {' -> '.join(chain + (domain,))}")
        chain = chain + (domain.lower(),)
        text = self.record(domain)
        if text is None:
            return "none"
        _check_syntax(text, domain)      # any error anywhere: permerror before evaluating
        redirect = None
        for term in text.split()[1:]:
            name, eq, value = term.partition("=")
            if eq and ":" not in name and "/" not in name:
                if name.lower() == "redirect":
                    redirect = value
                continue        # exp= and unknown modifiers are ignored
            qualifier = "+"
            if term[0] in "+-~?":
                qualifier, term = term[0], term[1:]
            if self._matches(term, domain, chain):
                return {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}[qualifier]
        if redirect:
            self._count()
            result = self.check(self.expand(redirect, domain), chain)
            if result == "none":
                raise SpfPermError(f"redirect={redirect} has no SPF record")
            return result
        return "neutral"

    def _matches(self, term: str, domain: str, chain: tuple[str, ...]) -> bool:
        mechanism, _, rest = term.partition(":")
        if "/" in mechanism:
            mechanism, _, cidr_text = mechanism.partition("/")
            rest = f"{rest}/{cidr_text}" if rest else f"/{cidr_text}"
        mechanism = mechanism.lower()
        try:
            target, cidr4, cidr6 = _target_cidr(self.expand(rest, domain), domain)
        except ValueError:
            raise SpfPermError(f"bad prefix length in {term!r} in {domain}") from None
        if mechanism == "all":
            return True
        if mechanism in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(rest, strict=False)
            except ValueError:
                raise SpfPermError(f"bad {mechanism} value {rest!r} in {domain}") from None
            return network.version == self.ip.version and self.ip in network
        if mechanism == "include":
            if not rest:
                raise SpfPermError(f"include without a domain in {domain}")
            self._count()
            result = self.check(target, chain)
            if result == "none":
                raise SpfPermError(f"include:{rest} has no SPF record")
            return result == "pass"
        if mechanism == "a":
            self._count()
            return self._in(self._void(self.resolver.addresses(target)), cidr4, cidr6)
        if mechanism == "mx":
            self._count()
            hosts = self._void(self.resolver.mx(target))
            if len(hosts) > 10:
                raise SpfPermError(f"mx:{target} has more than 10 MX hosts")
            return any(self._in(self.resolver.addresses(h), cidr4, cidr6) for _, h in hosts)
        if mechanism == "exists":
            self._count()
            return bool(self._void([a for a in self.resolver.addresses(target) if ":" not in a]))
        if mechanism == "ptr":
            self._count()       # deprecated; counted, never matched here
            return False
        raise SpfPermError(f"unknown mechanism {term!r} in {domain}")


MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}


def _check_syntax(text: str, domain: str) -> None:
    redirects = 0
    for term in text.split()[1:]:
        name, eq, _ = term.partition("=")
        if eq and ":" not in name and "/" not in name:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]*", name):
                raise SpfPermError(f"bad modifier {term!r} in {domain}")
            redirects += name.lower() == "redirect"
            continue
        bare = term[1:] if term[:1] in "+-~?" else term
        mechanism, _, rest = bare.partition(":")
        mechanism, _, cidr = mechanism.partition("/")
        if mechanism.lower() not in MECHANISMS:
            raise SpfPermError(f"unknown mechanism {term!r} in {domain}")
        if mechanism.lower() in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(rest, strict=False)
            except ValueError:
                raise SpfPermError(f"bad {mechanism} value {rest!r} in {domain}") from None
            if network.version != int(mechanism[-1]):
                raise SpfPermError(f"{term!r} in {domain}: not an IPv{mechanism[-1]} network")
        elif mechanism.lower() in ("include", "exists") and not rest:
            raise SpfPermError(f"{mechanism} without a domain in {domain}")
        elif mechanism.lower() == "all" and (rest or cidr):
            raise SpfPermError(f"bad term {term!r} in {domain}")
    if redirects > 1:
        raise SpfPermError(f"more than one redirect= in {domain}")


def _target_cidr(rest: str, domain: str) -> tuple[str, int, int]:
    target, cidr4, cidr6 = rest, 32, 128
    if "//" in target:
        target, _, six = target.partition("//")
        cidr6 = int(six)
    if "/" in target:
        target, _, four = target.partition("/")
        cidr4 = int(four)
    return target or domain, cidr4, cidr6
