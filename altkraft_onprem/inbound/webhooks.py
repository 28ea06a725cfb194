"""Relay webhooks into the same pipeline: the request body is stored in the intake (source
webhook) before it is answered, then each bounce or complaint it reports is classified and
applied like one that came back by mail. A provider's retry of the same body is applied once.

The provider signs, so its word on the recipient's address is taken; the campaign is found
from the original's Message-ID in the delivery ledger when the provider passes it on.
"""
from __future__ import annotations

import json

from sqlalchemy import Connection, select, update

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow

from . import intake, rules, service
from .attribution import message_id_attribution
from .models import inbound_messages
from .parse import Recipient, status_code
from .providers import Event


def receive(engine, settings, provider: str, body: bytes, events: list[Event]) -> dict:
    """Stores the request and applies its events in one transaction: {"stored", "applied"}."""
    with db.write(engine) as conn:
        inbound_id = intake.store(conn, body, source="webhook", rcpt=f"webhook:{provider}")
        claimed = conn.execute(update(inbound_messages).where(
            inbound_messages.c.id == inbound_id, inbound_messages.c.state == "new").values(
            state="processed" if events else "ignored", processed_at=utcnow(),
            outcome=events[0].kind if events else "none", subject=f"{provider} webhook",
            detail=json.dumps({"provider": provider, "events": len(events), "notes": []}))).rowcount
        applied = sum(_apply(conn, settings, inbound_id, provider, event) for event in events) if claimed else 0
    return {"stored": inbound_id, "applied": applied}


def _apply(conn: Connection, settings, inbound_id: int, provider: str, event: Event) -> bool:
    email = event.email.strip().strip("<>")
    person = conn.execute(select(subscribers.c.id).where(subscribers.c.email == email)).scalar()
    found = message_id_attribution(conn, event.message_id) if event.message_id else None
    campaign_id = found.campaign_id if found is not None and found.subscriber_id == person else None
    if event.kind == "complaint":
        service.record_complaint(conn, settings, inbound_id=inbound_id, source="webhook",
                                 subscriber_id=person, campaign_id=campaign_id, email=email,
                                 feedback_type=event.feedback_type, reporter=provider)
        return True
    status = status_code(event.status, event.diagnostic)
    bounce_class, rule = rules.classify(status, event.diagnostic)
    if event.hard is True and bounce_class == "unknown":
        bounce_class, rule = "hard", f"{provider}-hard"
    elif event.hard is False and bounce_class in ("unknown", "hard"):
        bounce_class, rule = "soft", f"{provider}-transient"
    service.record_bounce(conn, settings, inbound_id=inbound_id, source="webhook",
                          subscriber_id=person, campaign_id=campaign_id, email=email,
                          bounce_class=bounce_class, rule=rule, rules_version=rules.CURRENT_VERSION,
                          recipient=Recipient(address=email, status=status,
                                              diagnostic=event.diagnostic[:2000], remote_mta=provider))
    return True
