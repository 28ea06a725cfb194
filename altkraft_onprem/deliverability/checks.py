"""Running the checks of the sending domains and sending IPs: daily (jobs.py) and on demand.

Each domain and each IP is checked in a thread of its own with a resolver of its own (a
dead DNS server costs one timeout per domain, then "could not check"); PTR/FCrDNS, which
depends on the sending IPs and the HELO name only, is looked up once per run and shared by
every domain. 50 domains and 8 IPs take a few times the slowest one
(bench/deliverability_checks.py). The results are stored
in one transaction afterwards (watch.py compares them with the last known ones). A waiting
DKIM key whose record has appeared starts signing; a key retired by a rotation longer ago
than deliverability.dkim_retire_days is removed.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.config import Settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery import dnscheck, sending_domains
from altkraft_onprem.delivery.dnsquery import Check, Dns

from . import blocklists, domains, watch

DOMAIN_CHECKS = (*dnscheck.CHECKS, "blocklist")
MAX_THREADS = 16
SYSTEM = system_actor("deliverability checks")


@dataclass
class Target:
    """What one sending domain's checks run with."""

    domain: str
    bounce_domain: str
    names: list[str]                          # looked up in the domain blocklists
    keys: list[dnscheck.DkimKey]              # signing keys
    pending: list[dict] = field(default_factory=list)      # keys waiting for their record


def helo_name(settings: Settings) -> str:
    """The name the relays are greeted with: the first relay's helo, else this host's FQDN."""
    return next((r["helo"] for r in settings["smtp.relays"] if r["helo"]), "") or socket.getfqdn()


def targets(conn, settings: Settings, only: list[str] | None = None) -> list[Target]:
    signing = dnscheck.keys_from_settings(settings["dkim.keys"])
    waiting: dict[str, list[dict]] = {}
    for key in domains.pending_keys(conn):
        waiting.setdefault(key["domain"], []).append(key)
    found = []
    for entry in domains.list_domains(conn, settings):
        name = entry["domain"]
        if only is not None and name not in only:
            continue
        bounce = sending_domains.bounce_domain(settings, name)
        hosts = [name, bounce, entry.get("tracking_host") or ""]
        found.append(Target(name, bounce, [h for h in dict.fromkeys(hosts) if h],
                            [k for k in signing if k.domain.lower() == name],
                            waiting.get(name, [])))
    return found


def resolver(settings: Settings) -> Dns:
    """A resolver asking deliverability.nameservers, each query bounded by
    deliverability.check_timeout_seconds: one per thread (the checks, pre-send, compliance)."""
    return Dns(settings["deliverability.nameservers"], settings["deliverability.check_timeout_seconds"])


def check_ptr(settings: Settings) -> Check:
    """PTR/FCrDNS of the sending IPs against the HELO name: the same for every domain."""
    try:
        return dnscheck.check_ptr(resolver(settings), list(settings["deliverability.sending_ips"]),
                                  helo_name(settings), dnscheck.HELO_SETTING)
    except dnscheck.TempError as exc:
        return Check("unknown", f"could not check: DNS did not answer ({exc}); check the DNS "
                     "servers (deliverability.nameservers) and the network")


def check_domain(settings: Settings, target: Target, ptr: Check | None = None) -> dict:
    """{check: Check} of one domain, and which of its waiting keys DNS now publishes."""
    report = dnscheck.run_checks(
        target.domain, ips=settings["deliverability.sending_ips"], helo=helo_name(settings),
        keys=target.keys, bounce_domain=target.bounce_domain,
        nameservers=settings["deliverability.nameservers"],
        timeout=settings["deliverability.check_timeout_seconds"],
        helo_setting=dnscheck.HELO_SETTING, ptr=ptr)
    results = dict(report.checks)
    if not target.keys and target.pending:
        waiting = ", ".join(k["selector"] for k in target.pending)
        results["dkim"] = Check("missing", f"no key signs yet: {waiting} waits for its DNS record")
    dns = resolver(settings)
    results["blocklist"] = blocklists.summary([
        blocklists.look_up(dns, name, zone) for name in target.names
        for zone in settings["deliverability.domain_blocklists"]])
    published = [k for k in target.pending if domains.published(
        settings, target.domain, k["key_file"], k["selector"]).status == "pass"]
    return {"checks": results, "published": published}


def check_ip(settings: Settings, ip: str) -> list[blocklists.Listing]:
    dns = resolver(settings)
    return [blocklists.look_up(dns, ip, zone) for zone in settings["deliverability.ip_blocklists"]]


@dataclass
class Outcome:
    domains: dict[str, dict[str, Check]]
    ips: dict[str, list[blocklists.Listing]]
    regressions: list[watch.Regression]
    activated: list[str]


def run(engine: Engine, settings: Settings, only: list[str] | None = None, *,
        with_ips: bool = True, threads: int = MAX_THREADS,
        notify: Callable[[list[dict]], None] | None = None) -> Outcome:
    """Checks the sending domains (`only` some of them) and the sending IPs, stores the
    results and acts on them; `notify(regressions)` is called after the commit (jobs.py
    queues the email to the administrators). `threads=1` runs one after the other (the
    bench's baseline)."""
    with db.read(engine) as conn:
        wanted = targets(conn, settings, only)
    ips = list(settings["deliverability.sending_ips"]) if with_ips else []
    ptr = check_ptr(settings) if wanted else None
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(wanted) + len(ips)))) as pool:
        by_domain = dict(zip([t.domain for t in wanted],
                             pool.map(lambda t: check_domain(settings, t, ptr), wanted), strict=True))
        by_ip = dict(zip(ips, pool.map(lambda ip: check_ip(settings, ip), ips), strict=True))
    regressions, activated = [], []
    with db.write(engine) as conn:
        now = utcnow()
        for name, found in by_domain.items():
            for check, result in found["checks"].items():
                regressions.append(watch.store(conn, "domain", name, check, result, now))
            for key in found["published"]:
                domains.activate(conn, SYSTEM, key["domain_id"], key["key_id"],
                                 check=Check("pass", "published"))
                activated.append(f"{key['selector']}._domainkey.{name}")
        for ip, listings in by_ip.items():
            for listing in listings:
                regressions.append(watch.store(
                    conn, "ip", ip, listing.zone, Check(listing.status, listing.detail), now))
        regressions = [r for r in regressions if r is not None]
        watch.raise_alerts(conn, regressions)
        if only is None:
            domains.retire_expired(conn, SYSTEM, now - timedelta(
                days=settings["deliverability.dkim_retire_days"]))
        if regressions and notify is not None:
            items = [r.as_dict() for r in regressions]
            db.after_commit(conn, "deliverability.notify", lambda: notify(items))
    return Outcome({n: f["checks"] for n, f in by_domain.items()}, by_ip, regressions, activated)
