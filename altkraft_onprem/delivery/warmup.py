"""Warm-up rules: which warm-ups a campaign's mail counts against, and today's quota.

A warm-up is a new sending domain (`delivery.sending_domains[].warmup`, set on the Settings
page or PATCH /api/v1/domains/{id}) or a new sending IP (`deliverability.warmup_ips`): from
its first day, mail to each mailbox provider (delivery/providers.py) is limited to the day's
figure of `deliverability.warmup_curve`; after the curve's last day the warm-up is over.
Every campaign message from a warming domain counts against that domain's quota, and — as the
relay sends everything from its addresses — every campaign message counts against each
warming IP's. Pure rules; the ledger's held rows and their release are deliverability's
(deliverability/warmup.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .sending_domains import sending_domain


@dataclass(frozen=True)
class Warmup:
    """One warm-up on one day: `key` ("domain:example.com", "ip:192.0.2.25"), its day number
    (1 = the first) of `days`, and the quota per mailbox provider that day."""

    key: str
    kind: str
    name: str
    day: int
    days: int
    quota: int


def _start(text) -> date | None:
    try:
        return date.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _on(kind: str, name: str, started, curve: list[int], today: date) -> Warmup | None:
    start = _start(started)
    if start is None or not curve:
        return None
    day = (today - start).days + 1
    if not 1 <= day <= len(curve):
        return None                          # not begun yet, or over: the curve's last day passed
    return Warmup(f"{kind}:{name}", kind, name, day, len(curve), curve[day - 1])


def domain_warmup(settings, from_domain: str, today: date) -> Warmup | None:
    entry = sending_domain(settings, from_domain)
    if not entry.get("warmup"):
        return None
    return _on("domain", entry["domain"].lower(), entry.get("warmup_started_on") or today.isoformat(),
               settings["deliverability.warmup_curve"], today)


def warmups(settings, from_email: str, today: date) -> list[Warmup]:
    """The warm-ups a campaign from this address counts against today (none: no limit)."""
    found = []
    domain = domain_warmup(settings, from_email.rpartition("@")[2], today)
    if domain is not None:
        found.append(domain)
    for item in settings["deliverability.warmup_ips"]:
        ip = _on("ip", item["ip"], item["started_on"], settings["deliverability.warmup_curve"], today)
        if ip is not None:
            found.append(ip)
    return found
