"""Bounces and complaints as people and integrations see them: listing with filters, the
generic intake (POST /api/v1/bounces), and reclassification (audited)."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Connection, select, update

from altkraft_onprem.access.audit import record
from altkraft_onprem.access.models import Actor
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import FieldError, normalise_email, subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError
from altkraft_onprem.reports import feedback

from . import intake, rules
from .effects import ACTOR, record_bounce
from .models import BOUNCE_CLASSES, bounces, complaints, inbound_messages
from .parse import Recipient, status_code


def list_bounces(conn: Connection, *, campaign_id: int | None = None, bounce_class: str | None = None,
                 since: datetime | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    query = select(bounces).order_by(bounces.c.id.desc()).limit(limit).offset(offset)
    if campaign_id is not None:
        query = query.where(bounces.c.campaign_id == campaign_id)
    if bounce_class:
        query = query.where(bounces.c.bounce_class == bounce_class)
    if since is not None:
        query = query.where(bounces.c.at >= since)
    return [dict(r._mapping) for r in conn.execute(query)]


def list_complaints(conn: Connection, *, campaign_id: int | None = None,
                    since: datetime | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
    query = select(complaints).order_by(complaints.c.id.desc()).limit(limit).offset(offset)
    if campaign_id is not None:
        query = query.where(complaints.c.campaign_id == campaign_id)
    if since is not None:
        query = query.where(complaints.c.at >= since)
    return [dict(r._mapping) for r in conn.execute(query)]


def get_bounce(conn: Connection, bounce_id: int) -> dict:
    row = conn.execute(select(bounces).where(bounces.c.id == bounce_id)).first()
    if row is None:
        raise NotFound("bounce %(bounce_id)s does not exist", bounce_id=bounce_id)
    return dict(row._mapping)


def reclassify(conn: Connection, actor: Actor, bounce_id: int, bounce_class: str | None = None) -> dict:
    """Classifies a bounce again: by the current rule table, or as `bounce_class` (a person's
    decision, rule "manual"). A bounce that becomes hard suppresses the address; one that
    stops being hard leaves the suppression to an explicit, audited unsuppress."""
    found = get_bounce(conn, bounce_id)
    if bounce_class is not None and bounce_class not in BOUNCE_CLASSES:
        raise ServiceError("class must be one of %(bounce_classes)s", "bounce_class", bounce_classes=', '.join(BOUNCE_CLASSES))
    if bounce_class is None:
        new_class, rule = rules.classify(found["status"], found["diagnostic"])
    else:
        new_class, rule = bounce_class, "manual"
    suppressed = found["suppressed"]
    if new_class == "hard" and not suppressed and found["subscriber_id"] and found["email"]:
        audience.suppress(conn, ACTOR, email=found["email"], source="bounce",
                          reason=f"hard bounce (reclassified){' ' + found['status'] if found['status'] else ''}")
        suppressed = True
    conn.execute(update(bounces).where(bounces.c.id == bounce_id).values(
        bounce_class=new_class, rule=rule, rules_version=rules.CURRENT_VERSION, suppressed=suppressed))
    if new_class != found["bounce_class"] and found["subscriber_id"]:
        for cls, by in ((found["bounce_class"], -1), (new_class, 1)):
            feedback.count(conn, found["campaign_id"], found["subscriber_id"], found["provider"],
                           feedback.BOUNCE, cls, by)
    if found["inbound_id"]:
        conn.execute(update(inbound_messages).where(
            inbound_messages.c.id == found["inbound_id"], inbound_messages.c.state == "review",
            new_class != "unknown").values(state="processed"))
    record(conn, actor, "bounce.reclassify", "bounce", bounce_id, email=found["email"],
           old=found["bounce_class"], new=new_class, rule=rule)
    return get_bounce(conn, bounce_id)


def intake_bounce(conn: Connection, settings, actor: Actor, *, email: str, campaign_id: int | None,
                  status: str = "", diagnostic: str = "", action: str = "failed") -> dict:
    """POST /api/v1/bounces: an integration reports a bounce it received. The report is stored
    in the intake like any other (source webhook), then classified and applied."""
    try:
        address = normalise_email(email)
    except FieldError as exc:
        raise ServiceError.like(exc, "email") from None
    person = conn.execute(select(subscribers.c.id).where(subscribers.c.email == address)).scalar()
    raw = json.dumps({"email": address, "campaign_id": campaign_id, "status": status,
                      "diagnostic": diagnostic, "action": action, "by": actor.label},
                     ensure_ascii=False).encode("utf-8")
    inbound_id = intake.store(conn, raw, source="webhook", rcpt="api")
    status = status_code(status) or status_code(diagnostic)
    bounce_class, rule = rules.classify(status, diagnostic)
    state = "ignored" if action != "failed" else ("review" if bounce_class == "unknown" else "processed")
    claimed = conn.execute(update(inbound_messages).where(
        inbound_messages.c.id == inbound_id, inbound_messages.c.state == "new").values(
        state=state, outcome="bounce" if action == "failed" else "delayed", processed_at=utcnow(),
        campaign_id=campaign_id, subscriber_id=person,
        detail=json.dumps({"attributed_by": "api", "bounce_class": bounce_class, "rule": rule,
                           "notes": [] if person else [f"{address} is no subscriber"]}))).rowcount
    existing = conn.execute(select(bounces.c.id).where(bounces.c.inbound_id == inbound_id)).scalar()
    if claimed and action == "failed":
        existing = record_bounce(
            conn, settings, inbound_id=inbound_id, source="api", subscriber_id=person,
            campaign_id=campaign_id, email=address, bounce_class=bounce_class, rule=rule,
            rules_version=rules.CURRENT_VERSION,
            recipient=Recipient(address=address, status=status, diagnostic=diagnostic[:2000]))
    if existing is None:
        return {"id": None, "state": state}
    return {**get_bounce(conn, existing), "state": state}
