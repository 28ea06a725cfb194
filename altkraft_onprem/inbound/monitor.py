"""Deliverability alerts from what comes back: policy and content blocks, and the complaint
rate of a campaign at each mailbox provider — a warning at inbound.complaint_warn_percent, the
campaign paused at inbound.complaint_pause_percent (the Gmail/Yahoo bulk-sender lines), judged
once the campaign delivered inbound.complaint_min_delivered messages at that provider — and
the circuit breaker of each provider: sending there stops for every campaign when too many
of the last messages a campaign sent there were refused, deferred or reported as spam."""
from __future__ import annotations

from sqlalchemy import Connection, func, insert, select, union, update

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns import breakers
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow

from .models import alerts, bounces, complaints, inbound_messages

# What a provider does to mail it does not want: refuses it for policy or content reasons
# (at the relay or later in a DSN), defers it for reputation (a delay report with a policy
# status: outcome "deferred"), or its users report it as spam.
BLOCK_CLASSES = ("policy", "content")


def raise_alert(conn: Connection, kind: str, level: str, campaign_id: int | None, provider: str,
                detail: str, subject: str = "", times: int = 1) -> int:
    """Records an alert, or counts `times` more of the same (kind, level, campaign, provider,
    subject)."""
    where = [alerts.c.kind == kind, alerts.c.level == level, alerts.c.provider == provider,
             alerts.c.subject == subject,
             alerts.c.campaign_id.is_(None) if campaign_id is None else alerts.c.campaign_id == campaign_id]
    now = utcnow()
    found = conn.execute(select(alerts.c.id).where(*where)).scalar()
    if found is not None:
        conn.execute(update(alerts).where(alerts.c.id == found).values(
            last_at=now, count=alerts.c.count + times, detail=detail[:2000]))
        return found
    return conn.execute(insert(alerts).values(
        kind=kind, level=level, campaign_id=campaign_id, provider=provider, subject=subject,
        first_at=now,
        last_at=now, count=times, detail=detail[:2000]).returning(alerts.c.id)).scalar_one()


def complaint_rate(conn: Connection, campaign_id: int, provider: str) -> tuple[int, int]:
    """(complaints, delivered) of a campaign at one provider."""
    delivered = conn.execute(select(func.count()).select_from(
        deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sent",
        breakers.at_provider(provider))).scalar_one()
    reported = conn.execute(select(func.count(func.distinct(complaints.c.subscriber_id))).where(
        complaints.c.campaign_id == campaign_id, complaints.c.provider == provider)).scalar_one()
    return reported, delivered


def check_complaints(conn: Connection, settings, campaign_id: int | None, provider: str) -> str | None:
    """After a complaint: warns or pauses the campaign; returns the level reached, if any."""
    if campaign_id is None:
        return None
    reported, delivered = complaint_rate(conn, campaign_id, provider)
    if delivered < settings["inbound.complaint_min_delivered"]:
        return None
    percent = 100.0 * reported / delivered
    detail = (f"{reported} complaints from {delivered} delivered at {provider} "
              f"({percent:.2f} %)")
    if percent >= settings["inbound.complaint_pause_percent"]:
        campaigns.pause_by_system(conn, campaign_id, f"complaint rate {percent:.2f} % at "
                                  f"{provider} (limit {settings['inbound.complaint_pause_percent']} %)")
        raise_alert(conn, "complaint_rate", "paused", campaign_id, provider, detail)
        return "paused"
    if percent >= settings["inbound.complaint_warn_percent"]:
        raise_alert(conn, "complaint_rate", "warning", campaign_id, provider, detail)
        return "warning"
    return None


def list_alerts(conn: Connection, limit: int = 50) -> list[dict]:
    rows = conn.execute(select(alerts).order_by(alerts.c.last_at.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]


def check_breaker(conn: Connection, settings, campaign_id: int | None, provider: str) -> bool:
    """After a block, a deferral or a complaint at a provider: opens its breaker when at least
    inbound.breaker_percent of the last inbound.breaker_messages messages the campaign sent
    there (since the breaker last closed) came back refused, deferred or reported. True when
    this call opened it."""
    limit = settings["inbound.breaker_percent"]
    if campaign_id is None or not limit:
        return False
    breaker = breakers.get(conn, provider)
    if breakers.is_open(breaker):
        return False
    size = settings["inbound.breaker_messages"]
    d = deliveries.c
    last = select(d.subscriber_id).select_from(deliveries.join(subscribers, subscribers.c.id == d.subscriber_id)
                                               ).where(d.campaign_id == campaign_id,
                                                       d.state.in_(("sent", "failed")),
                                                       breakers.at_provider(provider))
    # Messages sent before the breaker last closed do not count toward the next trip.
    if breaker is not None and breaker["closed_at"] is not None:
        last = last.where(d.done_at > breaker["closed_at"])
    people = list(conn.execute(last.order_by(d.id.desc()).limit(size)).scalars())
    if len(people) < size:
        return False
    # Each part is an index lookup (ix_bounces_campaign, ix_complaints_campaign,
    # ix_inbound_messages_campaign): this runs in the transaction that applies a bounce.
    blocked = union(
        select(bounces.c.subscriber_id).where(bounces.c.campaign_id == campaign_id,
                                              bounces.c.bounce_class.in_(BLOCK_CLASSES),
                                              db.among(conn, bounces.c.subscriber_id, people)),
        select(complaints.c.subscriber_id).where(
            complaints.c.campaign_id == campaign_id,
            db.among(conn, complaints.c.subscriber_id, people)),
        select(inbound_messages.c.subscriber_id).where(
            inbound_messages.c.campaign_id == campaign_id, inbound_messages.c.outcome == "deferred",
            db.among(conn, inbound_messages.c.subscriber_id, people)),
    ).subquery()
    count = conn.execute(select(func.count()).select_from(blocked)).scalar_one()
    percent = 100.0 * count / size
    if percent < limit:
        return False
    reason = (f"{count} of the last {size} messages of campaign {campaign_id} to {provider} were "
              f"refused, deferred or reported as spam ({percent:.1f} %, limit {limit} %)")
    figures = {"blocked": count, "messages": size, "percent": round(percent, 1), "limit": limit}
    if not breakers.trip(conn, provider, reason, campaign_id, figures):
        return False
    raise_alert(conn, "breaker", "stopped", campaign_id, provider, reason)
    return True
