"""Deliverability alerts from what comes back: policy and content blocks, and the complaint
rate of a campaign at each mailbox provider — a warning at inbound.complaint_warn_percent, the
campaign paused at inbound.complaint_pause_percent (the Gmail/Yahoo bulk-sender lines), judged
once the campaign delivered inbound.complaint_min_delivered messages at that provider."""
from __future__ import annotations

from sqlalchemy import Connection, func, insert, select, update

from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.providers import PROVIDERS

from .models import alerts, complaints


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


def _at_provider(provider: str):
    domains = subscribers.c.email_domain
    if provider in PROVIDERS:
        return domains.in_(PROVIDERS[provider])
    return domains.not_in([d for names in PROVIDERS.values() for d in names])


def complaint_rate(conn: Connection, campaign_id: int, provider: str) -> tuple[int, int]:
    """(complaints, delivered) of a campaign at one provider."""
    delivered = conn.execute(select(func.count()).select_from(
        deliveries.join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sent",
        _at_provider(provider))).scalar_one()
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
