"""DNS checks for a sending domain: PTR/FCrDNS/HELO, SPF, DKIM, DMARC, MX, MTA-STS, TLS-RPT.

One module for `altkraft-install check-dns`, `altkraft-install doctor` and the
Deliverability page (daily and on demand). Every check returns Check(status, detail, fix)
where `fix` is the exact record to publish (zone-file syntax) whenever the status is not
"pass" and a record can be proposed; a record never names a host that is not public (e.g. the
default HELO "localhost"): the detail then says which setting is missing instead.

Statuses: pass, warn, fail (published but wrong), missing (not published), unknown (could not
check: the DNS server timed out or answered SERVFAIL — never a failure of the record).
SPF is evaluated by pyspf (spf.py); DMARC records are validated and MTA-STS / TLS-RPT read by
checkdmarc (mailpolicy.py).
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

from altkraft_onprem.delivery import dkimkeys, mailpolicy, spf
from altkraft_onprem.delivery.dnsquery import (  # noqa: F401  (callers use them from here)
    STATUS_ORDER,
    STATUSES,
    Check,
    Dns,
    TempError,
    parse_nameserver,
)

REQUIRED = ("ptr", "spf", "dkim", "dmarc", "mx")
CHECKS = (*REQUIRED, "mta_sts", "tls_rpt")
HELO_SETTING = "helo in [[smtp.relays]]"
_PUBLIC_SUFFIXES = PublicSuffixList()     # the list ships inside the package: no network


@dataclass
class Report:
    checks: dict[str, Check]

    @property
    def failed(self) -> bool:
        """A required record is wrong or missing, or could not be checked (so it cannot be
        said to be right); MTA-STS and TLS-RPT count only when published wrong."""
        return any(c.status not in ("pass", "warn") if name in REQUIRED else c.status == "fail"
                   for name, c in self.checks.items())

    @property
    def summary(self) -> str:
        """pass, warn or fail, as `altkraft-install doctor` reports one line."""
        return "fail" if self.failed else ("pass" if self.worst == "pass" else "warn")

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
    problems, fixes, good, absent = [], [], [], 0
    for ip in ips:
        reverse = dns.reversename.from_address(ip).to_text()
        names = resolver.ptr(ip)
        want = f"{reverse} IN PTR {helo}."
        if not names:
            absent += 1
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
        return Check("missing" if absent == len(ips) else "fail", "; ".join(problems),
                     "\n".join(fixes))
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
        return Check("missing", f"{domain} has no SPF record",
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
        try:
            found = spf.evaluate(resolver.resolver, ip, domain, "")
        except spf.TempError as exc:
            raise TempError(str(exc)) from None
        if found.result == "permerror":
            reason = found.explanation.removeprefix("SPF Permanent Error: ")
            return Check("fail", f"SPF permerror: {reason}",
                         dkimkeys.zone_line(domain, _spf_with_ips(None, ips)) +
                         "  (list the sending IPs directly instead of nested includes)")
        results.append((ip, found.result, found.lookups))
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
        return Check("missing", f"no DKIM key configured for {domain}",
                     f"altkraft-install dkim generate --domain {domain} --selector ak1")
    problems, fixes, good, absent = [], [], [], 0
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
            absent += 1
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
        return Check("missing" if absent == len(keys) else "fail", "; ".join(problems + good),
                     "\n".join(fixes))
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
        return Check("missing", f"no DMARC record at _dmarc.{from_domain}", suggested)
    if len(records) > 1:
        return Check("fail", f"{where} has {len(records)} DMARC records; receivers ignore all of them",
                     suggested)
    invalid, notes = mailpolicy.review_dmarc(resolver.resolver, records[0], where.removeprefix("_dmarc."))
    if invalid:
        return Check("fail", f"DMARC record at {where} is not valid: {invalid}", suggested)
    tags = dkimkeys.parse_tags(records[0])
    policy = tags.get(policy_key) or tags.get("p")
    if policy not in ("none", "quarantine", "reject"):
        return Check("fail", f"DMARC record at {where} has no valid policy (p=): {records[0]}", suggested)
    spf_ok = aligned(bounce_domain, from_domain, tags.get("aspf", "r"))
    dkim_ok = any(aligned(d, from_domain, tags.get("adkim", "r")) for d in dkim_domains)
    modes = f"adkim={tags.get('adkim', 'r')}, aspf={tags.get('aspf', 'r')}"
    said = (f"policy p={policy} at {where}; SPF {'aligned' if spf_ok else 'NOT aligned'} "
            f"(Return-Path {bounce_domain}), DKIM {'aligned' if dkim_ok else 'NOT aligned'} "
            f"(d={', '.join(dkim_domains) or 'none'}) with From {from_domain} ({modes})"
            + "".join(f". {note}" for note in notes))
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
    return Check("missing", f"{bounce_domain} has no MX (nor address): bounces are lost and some "
                 f"receivers refuse its mail{missing}", fix)


# --- all together ---------------------------------------------------------------------------

def _guarded(fn, *args) -> Check:
    try:
        return fn(*args)
    except (TempError, mailpolicy.Unanswered) as exc:
        return Check("unknown", f"could not check: DNS did not answer ({exc}); check the DNS "
                     "servers (--nameserver, deliverability.nameservers) and the network", "")


def _receiving(resolver: Dns, domains: list[str], one) -> Check:
    """MTA-STS or TLS-RPT of each domain that receives mail, the worst first."""
    found = [(name, one(resolver.resolver, name, Check)) for name in domains]
    if len(found) == 1:
        return found[0][1]
    worst = max((c.status for _, c in found), key=STATUS_ORDER.__getitem__)
    return Check(worst, "; ".join(f"{name}: {c.detail}" for name, c in found),
                 "\n".join(c.fix for _, c in found if c.fix))


def run_checks(domain: str, *, ips: list[str] | tuple[str, ...] = (), helo: str = "",
               keys: list[DkimKey] | tuple = (), bounce_domain: str = "", from_domain: str = "",
               nameservers: list[str] | tuple[str, ...] = (), timeout: float = 3.0,
               helo_setting: str = HELO_SETTING, ptr: Check | None = None) -> Report:
    """Runs the checks (CHECKS) for a sending domain; never raises on DNS trouble. `helo_setting`
    names where the HELO name came from, for the message when it is not a public name. `ptr`:
    the PTR result when the caller has it already (it depends on the IPs and HELO only, so a
    run over many domains looks it up once)."""
    resolver = Dns(nameservers, timeout)
    ips = list(ips)
    helo = helo or f"mail.{domain}"
    bounce = bounce_domain or domain
    from_domain = from_domain or domain
    keys = list(keys)
    checks = {
        "ptr": ptr or _guarded(check_ptr, resolver, ips, helo, helo_setting),
        "spf": _guarded(check_spf, resolver, bounce, ips),
        "dkim": _guarded(check_dkim, resolver, domain, keys),
        "dmarc": _guarded(check_dmarc, resolver, from_domain, bounce,
                          sorted({k.domain for k in keys if k.domain.lower() == domain.lower()})),
        "mx": _guarded(check_mx, resolver, bounce, helo, helo_setting),
        "mta_sts": _guarded(_receiving, resolver, list(dict.fromkeys([domain, bounce])),
                            mailpolicy.check_mta_sts),
        "tls_rpt": _guarded(_receiving, resolver, list(dict.fromkeys([domain, bounce])),
                            lambda r, name, check: mailpolicy.check_tls_rpt(
                                r, name, f"tls-reports@{org_domain(from_domain)}", check)),
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
