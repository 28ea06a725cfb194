"""Recording a sender's outcome in the ledger — the one call every recorder makes (a sender
alone, the group commit of many, the replay of a dead sender's journal) — plus the domain
event when the relay refused a message for good: a synchronous 5xx is a bounce too, and
inbound mail (a higher domain) turns it into one."""
from __future__ import annotations

from sqlalchemy import Connection

from altkraft_onprem import events
from altkraft_onprem.delivery.errors import refusal

from . import ledger


def record(conn: Connection, row_id: int, owner: str, state: str, **values) -> bool:
    """ledger.record, and email.rejected after a relay's 5xx (in the same transaction)."""
    ok = ledger.record(conn, row_id, owner, state, **values)
    if ok and state == "failed" and events.EMAIL_REJECTED.has_handlers:
        refused = refusal(values.get("reply"))
        if refused is not None and refused[0] >= 500:
            campaign_id, subscriber_id = ledger.row_person(conn, row_id)
            events.EMAIL_REJECTED.emit(conn, campaign_id=campaign_id, subscriber_id=subscriber_id,
                                       email=None if subscriber_id else ledger.row_address(conn, row_id),
                                       code=refused[0], reply=refused[1])
    if ok and state in ("sent", "failed"):
        ledger.emit_outcomes(conn, [row_id])
    return ok
