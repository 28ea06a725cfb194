"""DNS checks for a sending domain: PTR/FCrDNS/HELO, SPF, DKIM, DMARC and MX.

One module for `altkraft-install check-dns`, `altkraft-install doctor` and the
Deliverability page. Every check returns Check(status, detail, fix) where `fix` is the exact
record to publish (zone-file syntax) whenever the status is not "pass" and a record can be
proposed; a record never names a host that is not public (e.g. the default HELO "localhost"):
the detail then says which setting is missing instead.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename
from publicsuffixlist import PublicSuffixList

from altkraft_onprem.delivery import dkimkeys, spf

CHECKS = ("ptr", "spf", "dkim", "dmarc", "mx")
HELO_SETTING = "helo in [[smtp.relays]]"
_PUBLIC_SUFFIXES = PublicSuffixList()     # the list ships inside the package: no network
STATUS_ORDER = {"pass": 0, "warn": 1, "fail": 2}


@dataclass
class Check:
    status: str           # "pass" | "warn" | "fail"
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class Report:
    checks: dict[str, Check]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks.values())

    @property
    def worst(self) -> str:
        return max((c.status for c in self.checks.values()), key=STATUS_ORDER.__getitem__,
                   default="pass")

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {name: check.as_dict() for name, check in self.checks.items()}


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    key_file: str


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


class Dns:
    """Small dnspython wrapper: empty list for NXDOMAIN/no data, TempError otherwise."""

    def __init__(self, nameservers: list[str] | tuple[str, ...] = (), timeout: float = 3.0):
        if nameservers:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(n))
                                         for n in nameservers]
        else:
            self.resolver = dns.resolver.Resolver()
        self.resolver.lifetime = timeout
        self.resolver.timeout = timeout

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


# --- PTR / FCrDNS / HELO --------------------------------------------------------------------

def is_public_host_name(name: str) -> bool:
    """A name other hosts can look up: below a suffix of the Public Suffix List, so not
    "localhost", a bare host name, an IP address, .local, .internal, .localdomain, .arpa."""
    name = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    if "." not in name or name.endswith(".arpa"):
        return False
    return _PUBLIC_SUFFIXES.privatesuffix(name, accept_unknown=False) is not None


def not_public_helo(helo: str, setting: str) -> str:
    """Why no record can name the HELO host, and which setting to fill in."""
    return (f"the HELO name {helo!r} is not a public host name, so no record can point at it: "
            f"set {setting} to the sending host's public name (e.g. mail.example.com)")


def check_ptr(resolver: Dns, ips: list[str], helo: str, helo_setting: str = HELO_SETTING) -> Check:
    if not ips:
        return Check("warn", "no sending IP given (--ip or deliverability.sending_ips): PTR not checked",
                     "")
    public = is_public_host_name(helo)
    problems, fixes, good = [], [], []
    for ip in ips:
        reverse = dns.reversename.from_address(ip).to_text()
        names = resolver.ptr(ip)
        want = f"{reverse} IN PTR {helo}."
        if not names:
            problems.append(f"{ip} has no PTR record" if public
                            else f"{ip} has no PTR record; {not_public_helo(helo, helo_setting)}")
            if public:
                fixes.append(want)
            continue
        confirmed = [n for n in names if ip in resolver.addresses(n)]
        if not confirmed:
            problems.append(f"PTR of {ip} is {', '.join(names)}, which does not resolve back to "
                            f"{ip} (forward-confirmed reverse DNS fails)")
            fixes.append(f"{names[0]}. IN {'AAAA' if ':' in ip else 'A'} {ip}")
            continue
        if helo.lower().rstrip(".") not in {n.lower() for n in confirmed}:
            problems.append(f"PTR of {ip} is {confirmed[0]}, but the HELO name is {helo}")
            use_ptr = f"set {helo_setting} to \"{confirmed[0]}\""
            fixes.append(f"{want}  (or {use_ptr})" if public else use_ptr)
            continue
        good.append(f"{ip} -> {confirmed[0]} -> {ip}")
    if problems:
        return Check("fail", "; ".join(problems), "\n".join(fixes))
    return Check("pass", f"{'; '.join(good)}, matches HELO {helo}")


# --- SPF ------------------------------------------------------------------------------------

def _spf_with_ips(record: str | None, ips: list[str]) -> str:
    terms = (record or "v=spf1 ~all").split()
    if not any(t.lstrip("+-~?").lower() == "all" or t.lower().startswith("redirect=") for t in terms):
        terms.append("~all")
    add = [f"{'ip6' if ':' in ip else 'ip4'}:{ip}" for ip in ips if f"ip4:{ip}" not in terms]
    return " ".join(terms[:1] + add + terms[1:])


def check_spf(resolver: Dns, domain: str, ips: list[str]) -> Check:
    texts = [t for t in resolver.txt(domain) if spf.is_spf(t)]
    example_ips = ips or ["SENDING_IP"]
    if not texts:
        return Check("fail", f"{domain} has no SPF record",
                     dkimkeys.zone_line(domain, _spf_with_ips(None, example_ips)))
    if len(texts) > 1:
        merged = " ".join(["v=spf1"] + sorted({t for r in texts for t in r.split()[1:]
                                               if t.lstrip("+-~?").lower() != "all"}) + ["~all"])
        return Check("fail", f"{domain} has {len(texts)} SPF records; receivers treat that as an "
                     "error (permerror). Publish exactly one", dkimkeys.zone_line(domain, merged))
    if not ips:
        return Check("warn", f"SPF record found ({texts[0]}); no sending IP given, so it was not "
                     "evaluated", "")
    results = []
    for ip in ips:
        evaluation = spf.Evaluation(resolver, ip, domain)
        try:
            result = evaluation.check(domain)
        except spf.SpfPermError as exc:
            return Check("fail", f"SPF permerror: {exc}",
                         dkimkeys.zone_line(domain, _spf_with_ips(None, ips)) +
                         "  (list the sending IPs directly instead of nested includes)")
        results.append((ip, result, evaluation.lookups))
    bad = [(ip, r) for ip, r, _ in results if r != "pass"]
    lookups = max(n for _, _, n in results)
    if bad:
        said = "; ".join(f"SPF {r} for {ip}" for ip, r in bad)
        return Check("fail", f"{said}: the record does not authorise the sending IP ({texts[0]})",
                     dkimkeys.zone_line(domain, _spf_with_ips(texts[0], [ip for ip, _ in bad])))
    if any(t.lower() in ("+all", "all", "?all") for t in texts[0].split()[1:]):
        return Check("warn", f"SPF passes, but {texts[0]!r} lets anyone send as {domain}",
                     dkimkeys.zone_line(domain, _spf_with_ips(texts[0].replace("+all", "~all")
                                                              .replace("?all", "~all"), ips)))
    return Check("pass", f"SPF pass for {', '.join(ips)} ({lookups} of {spf.LOOKUP_LIMIT} DNS lookups)")


# --- DKIM -----------------------------------------------------------------------------------

def check_dkim(resolver: Dns, domain: str, keys: list[DkimKey]) -> Check:
    keys = [k for k in keys if k.domain.lower() == domain.lower()]
    if not keys:
        return Check("fail", f"no DKIM key configured for {domain}",
                     f"altkraft-install dkim generate --domain {domain} --selector ak1")
    problems, fixes, good = [], [], []
    for key in keys:
        name = dkimkeys.record_name(key.domain, key.selector)
        try:
            ours = dkimkeys.public_key(dkimkeys.read_key_file(key.key_file))
        except dkimkeys.DkimKeyError as exc:
            problems.append(f"selector {key.selector}: {exc}")
            continue
        want = dkimkeys.zone_line(name, ours.txt)
        published = [t for t in resolver.txt(name) if "p=" in t]
        if not published:
            problems.append(f"no DKIM record at {name}")
            fixes.append(want)
            continue
        tags = dkimkeys.parse_tags(published[0])
        if not tags.get("p"):
            problems.append(f"the key at {name} is revoked (empty p=)")
            fixes.append(want)
        elif tags["p"] != ours.p or tags.get("k", "rsa").lower() != ours.k:
            problems.append(f"the key published at {name} does not match our key {key.key_file}")
            fixes.append(want)
        else:
            good.append(f"{name} matches")
    if problems:
        return Check("fail", "; ".join(problems + good), "\n".join(fixes))
    return Check("pass", "; ".join(good))


# --- DMARC ----------------------------------------------------------------------------------

def org_domain(domain: str) -> str:
    """The organisational domain of DMARC (RFC 7489 3.2): one label below the public suffix."""
    name = domain.lower().rstrip(".")
    return _PUBLIC_SUFFIXES.privatesuffix(name) or name


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    if mode == "s":
        return domain.lower() == from_domain.lower()
    return org_domain(domain) == org_domain(from_domain)


def check_dmarc(resolver: Dns, from_domain: str, bounce_domain: str, dkim_domains: list[str]) -> Check:
    suggested = dkimkeys.zone_line(f"_dmarc.{from_domain}",
                                   f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{org_domain(from_domain)}")
    where = f"_dmarc.{from_domain}"
    records = [t for t in resolver.txt(where) if t.lower().startswith("v=dmarc1")]
    policy_key = "p"
    if not records and org_domain(from_domain) != from_domain.lower():
        where = f"_dmarc.{org_domain(from_domain)}"
        records = [t for t in resolver.txt(where) if t.lower().startswith("v=dmarc1")]
        policy_key = "sp"
    if not records:
        return Check("fail", f"no DMARC record at _dmarc.{from_domain}", suggested)
    if len(records) > 1:
        return Check("fail", f"{where} has {len(records)} DMARC records; receivers ignore all of them",
                     suggested)
    tags = dkimkeys.parse_tags(records[0])
    policy = tags.get(policy_key) or tags.get("p")
    if policy not in ("none", "quarantine", "reject"):
        return Check("fail", f"DMARC record at {where} has no valid policy (p=): {records[0]}", suggested)
    spf_ok = aligned(bounce_domain, from_domain, tags.get("aspf", "r"))
    dkim_ok = any(aligned(d, from_domain, tags.get("adkim", "r")) for d in dkim_domains)
    modes = f"adkim={tags.get('adkim', 'r')}, aspf={tags.get('aspf', 'r')}"
    said = (f"policy p={policy} at {where}; SPF {'aligned' if spf_ok else 'NOT aligned'} "
            f"(Return-Path {bounce_domain}), DKIM {'aligned' if dkim_ok else 'NOT aligned'} "
            f"(d={', '.join(dkim_domains) or 'none'}) with From {from_domain} ({modes})")
    relaxed = dkimkeys.zone_line(where, "; ".join(
        f"{k}={v}" for k, v in {**tags, "adkim": "r", "aspf": "r"}.items()))
    if not spf_ok and not dkim_ok:
        return Check("fail", f"DMARC misaligned: {said}", relaxed)
    if not spf_ok or not dkim_ok:
        return Check("warn", said, relaxed)
    if policy == "none":
        return Check("warn", f"{said}; p=none only monitors: move to quarantine once reports are clean",
                     dkimkeys.zone_line(where, records[0].replace("p=none", "p=quarantine")))
    return Check("pass", said)


# --- MX for the bounce domain ---------------------------------------------------------------

def check_mx(resolver: Dns, bounce_domain: str, helo: str, helo_setting: str = HELO_SETTING) -> Check:
    hosts = resolver.mx(bounce_domain)
    public = is_public_host_name(helo)
    fix = f"{bounce_domain}. IN MX 10 {helo}." if public else ""
    missing = "" if public else f"; {not_public_helo(helo, helo_setting)}"
    if hosts:
        if len(hosts) == 1 and hosts[0][1] in ("", "."):
            return Check("fail", f"{bounce_domain} has a null MX: bounces cannot come back{missing}", fix)
        return Check("pass", "MX " + ", ".join(f"{p} {h}" for p, h in hosts))
    if resolver.addresses(bounce_domain):
        return Check("warn", f"{bounce_domain} has no MX; bounces go to its A/AAAA address{missing}", fix)
    return Check("fail", f"{bounce_domain} has no MX (nor address): bounces are lost and some "
                 f"receivers refuse its mail{missing}", fix)


# --- all together ---------------------------------------------------------------------------

def _guarded(fn, *args) -> Check:
    try:
        return fn(*args)
    except TempError as exc:
        return Check("fail", f"DNS did not answer ({exc}); check --nameserver / network", "")


def run_checks(domain: str, *, ips: list[str] | tuple[str, ...] = (), helo: str = "",
               keys: list[DkimKey] | tuple = (), bounce_domain: str = "", from_domain: str = "",
               nameservers: list[str] | tuple[str, ...] = (), timeout: float = 3.0,
               helo_setting: str = HELO_SETTING) -> Report:
    """Runs the five checks for a sending domain; never raises on DNS trouble. `helo_setting`
    names where the HELO name came from, for the message when it is not a public name."""
    resolver = Dns(nameservers, timeout)
    ips = list(ips)
    helo = helo or f"mail.{domain}"
    bounce = bounce_domain or domain
    from_domain = from_domain or domain
    keys = list(keys)
    checks = {
        "ptr": _guarded(check_ptr, resolver, ips, helo, helo_setting),
        "spf": _guarded(check_spf, resolver, bounce, ips),
        "dkim": _guarded(check_dkim, resolver, domain, keys),
        "dmarc": _guarded(check_dmarc, resolver, from_domain, bounce,
                          sorted({k.domain for k in keys if k.domain.lower() == domain.lower()})),
        "mx": _guarded(check_mx, resolver, bounce, helo, helo_setting),
    }
    return Report(checks)


def keys_from_settings(dkim_keys: list[dict[str, Any]], root: str = "") -> list[DkimKey]:
    """[[dkim.keys]] as DkimKey; `root` prefixes absolute key paths of a staged install."""
    found = []
    for item in dkim_keys:
        path = item["key_file"]
        if root and path.startswith("/"):
            path = root.rstrip("/") + path
        found.append(DkimKey(item["domain"], item["selector"], path))
    return found


@dataclass
class Domain:
    name: str
    selectors: list[str] = field(default_factory=list)


def sending_domains(dkim_keys: list[dict[str, Any]]) -> list[Domain]:
    """Domains from [[dkim.keys]] with their selectors, in config order."""
    domains: dict[str, Domain] = {}
    for item in dkim_keys:
        domains.setdefault(item["domain"].lower(), Domain(item["domain"].lower())).selectors.append(item["selector"])
    return list(domains.values())
