"""REST route of the bulk-sender compliance panel (Gmail's and Yahoo's rules, computed now)."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from altkraft_onprem import db
from altkraft_onprem.api import operation
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery.dnsquery import STATUSES

from . import compliance

TAG = "Deliverability"


class LineOut(BaseModel):
    rule: Literal[compliance.RULES] = Field(  # type: ignore[valid-type]
        description="spf, dkim_aligned, dmarc, one_click_unsubscribe, feedback_id and "
        "from_not_freemail: one line per From domain; ptr: the sending IPs; tls: one line per "
        "relay; complaint_rate: one line")
    subject: str = Field(description="The From domain (spf: its Return-Path domain), the "
                         "sending IPs, the relay host:port, or empty")
    status: Literal[STATUSES] = Field(  # type: ignore[valid-type]
        description="unknown: could not check (DNS, the relay or the URL did not answer)")
    requirement: str = Field(description="What the rule asks")
    detail: str = Field(description="What was found, computed now")


class ComplianceOut(BaseModel):
    status: Literal[STATUSES] = Field(description="The worst line's")  # type: ignore[valid-type]
    checked_at: datetime
    lines: list[LineOut]


@operation("/deliverability/compliance", "GET", permission="deliverability:read", tag=TAG,
           summary="Bulk-sender compliance (Gmail/Yahoo 2024 rules), each line computed now: "
                   "a composed sample message is signed and verified, the relays are probed "
                   "with STARTTLS, the one-click unsubscribe URL is POSTed to",
           response=ComplianceOut)
def compliance_report():
    report = compliance.run(db.get_engine(), current_settings())
    return {"status": report.status, "checked_at": report.checked_at,
            "lines": [{**line.as_dict(), "requirement": compliance.REQUIREMENTS[line.rule]}
                      for line in report.lines]}
