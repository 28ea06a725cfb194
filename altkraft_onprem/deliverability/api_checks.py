"""REST routes for the checks: a domain's latest results, running them now, the blocklists."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from altkraft_onprem import db
from altkraft_onprem.api import operation
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery.dnsquery import STATUSES

from . import checks, domains, jobs, watch

TAG = "Deliverability"
Status = Literal[STATUSES]  # type: ignore[valid-type]


class CheckOut(BaseModel):
    check: Literal[checks.DOMAIN_CHECKS]  # type: ignore[valid-type]
    status: Status = Field(description="unknown: could not check (DNS timeout, SERVFAIL); "
                          "never raises an alert")
    detail: str
    fix: str = Field(description="The record to publish (zone-file syntax), when one helps")
    checked_at: datetime


class ChecksOut(BaseModel):
    checks: list[CheckOut]


class ListingOut(BaseModel):
    kind: Literal["ip"] = Field(description="ip: a sending IP (deliverability.sending_ips)")
    subject: str
    zone: str = Field(description="The blocklist (deliverability.ip_blocklists)")
    status: Literal["pass", "fail", "unknown"] = Field(description="pass: not listed; fail: "
                                                       "listed; unknown: could not check")
    detail: str
    checked_at: datetime


class BlocklistsOut(BaseModel):
    listings: list[ListingOut] = Field(description="Each sending IP on each list. A domain's "
                                       "own names are the `blocklist` check of /domains/{id}/checks")


def _out(rows: list[dict]) -> dict:
    order = {name: i for i, name in enumerate(checks.DOMAIN_CHECKS)}
    return {"checks": sorted(({"check": r["check"], "status": r["status"], "detail": r["detail"],
                               "fix": r["fix"], "checked_at": r["checked_at"]} for r in rows),
                             key=lambda c: order.get(c["check"], 99))}


@operation("/domains/<int:domain_id>/checks", "GET", permission="deliverability:read", tag=TAG,
           summary="The latest results of a domain's DNS and blocklist checks", response=ChecksOut)
def domain_checks(domain_id: int):
    with db.read(db.get_engine()) as conn:
        name = domains.get_domain(conn, domain_id)["domain"]
        return _out(watch.latest(conn, "domain", name))


@operation("/domains/<int:domain_id>/checks", "POST", permission="settings:manage", tag=TAG,
           summary="Run a domain's checks now (each DNS query has "
                   "deliverability.check_timeout_seconds)", response=ChecksOut)
def run_domain_checks(domain_id: int):
    engine = db.get_engine()
    with db.read(engine) as conn:
        name = domains.get_domain(conn, domain_id)["domain"]
    checks.run(engine, current_settings(), [name], with_ips=False, notify=jobs.notify_regressions)
    with db.read(engine) as conn:
        return _out(watch.latest(conn, "domain", name))


@operation("/deliverability/blocklists", "GET", permission="deliverability:read", tag=TAG,
           summary="The sending IPs on the DNS blocklists (latest lookups)", response=BlocklistsOut)
def blocklist_listings():
    with db.read(db.get_engine()) as conn:
        rows = watch.latest(conn, "ip")
    return {"listings": [{"kind": r["kind"], "subject": r["subject"], "zone": r["check"],
                          "status": r["status"], "detail": r["detail"],
                          "checked_at": r["checked_at"]} for r in rows]}
