"""The campaign report: delivery from the ledger, opens, reading time, clicks, rates, over time,
by recipient domain and by mail client/device.

Human figures leave out events labelled machine (MPP prefetches, scanners, HEAD requests,
honeypot hits); totals include them. Rates use human unique figures:
CTR = unique human clickers / delivered, click-to-open = unique human clickers / unique human
openers. Reading-time averages leave out streams that could not be measured (image proxies).

`variant` (a split test's 1, 2, …) narrows every figure to the recipients whose ledger row
has that variant — its test portion plus, for the winner, the rest of the audience.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, and_, case, func, select, true

from altkraft_onprem.audience.models import consents, subscribers
from altkraft_onprem.campaigns.models import campaigns, deliveries
from altkraft_onprem.errors import NotFound
from altkraft_onprem.tracking.models import (
    CLICK,
    HUMAN,
    MACHINE,
    OPEN,
    READ,
    READ_CLASSES,
    UNMEASURABLE,
    tracking_events,
)

from . import periods

ev = tracking_events.c


def _ratio(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def campaign_row(conn: Connection, campaign_id: int) -> dict[str, Any]:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return dict(row)


def delivery_counts(conn: Connection, campaign_id: int, variant: int | None = None) -> dict[str, int]:
    query = select(deliveries.c.state, func.count()).where(deliveries.c.campaign_id == campaign_id)
    if variant is not None:
        query = query.where(deliveries.c.variant == variant)
    counts = dict(conn.execute(query.group_by(deliveries.c.state)).all())
    # held: a split test's rest of the audience, waiting for the winner (still to be sent)
    return {"total": sum(counts.values()), "delivered": counts.get("sent", 0),
            "failed": counts.get("failed", 0), "in_doubt": counts.get("in_doubt", 0),
            "pending": sum(counts.get(s, 0) for s in ("queued", "leased", "held")),
            "held": counts.get("held", 0),
            "skipped": counts.get("skipped", 0) + counts.get("cancelled", 0)}


def in_variant(campaign_id: int, variant: int | None, subscriber_id=ev.subscriber_id):
    """The condition "this event's subscriber got `variant`" (no condition for None)."""
    if variant is None:
        return true()
    return subscriber_id.in_(select(deliveries.c.subscriber_id).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.variant == variant))


def _unique(kind: str, campaign_id: int, human: bool = False, variant: int | None = None):
    query = select(func.count(func.distinct(ev.subscriber_id))).where(
        ev.campaign_id == campaign_id, ev.kind == kind, in_variant(campaign_id, variant))
    return query.where(HUMAN) if human else query


def summary(conn: Connection, campaign_id: int, variant: int | None = None) -> dict[str, Any]:
    """The figures of GET /api/v1/campaigns/{id}/report (of one split-test variant)."""
    campaign_row(conn, campaign_id)
    delivery = delivery_counts(conn, campaign_id, variant)
    scope = in_variant(campaign_id, variant)
    totals = dict(conn.execute(select(ev.kind, func.count()).where(ev.campaign_id == campaign_id, scope)
                               .group_by(ev.kind)).all())
    opens = {"unique": conn.execute(_unique(OPEN, campaign_id, variant=variant)).scalar() or 0,
             "total": totals.get(OPEN, 0),
             "human": conn.execute(_unique(OPEN, campaign_id, True, variant)).scalar() or 0}
    machine_opens = conn.execute(select(func.count()).where(
        ev.campaign_id == campaign_id, ev.kind == OPEN, MACHINE, scope)).scalar() or 0
    opens["machine"] = machine_opens
    clicks = {"unique": conn.execute(_unique(CLICK, campaign_id, variant=variant)).scalar() or 0,
              "total": totals.get(CLICK, 0),
              "human": conn.execute(_unique(CLICK, campaign_id, True, variant)).scalar() or 0}
    clicks["machine"] = conn.execute(select(func.count()).where(
        ev.campaign_id == campaign_id, ev.kind == CLICK, MACHINE, scope)).scalar() or 0
    read_rows = conn.execute(select(ev.read_class, func.count(), func.avg(ev.read_seconds)).where(
        ev.campaign_id == campaign_id, ev.kind == READ, HUMAN, scope).group_by(ev.read_class)).all()
    by_class = {name: count for name, count, _ in read_rows}
    measured = [(count, avg) for name, count, avg in read_rows if name in READ_CLASSES]
    seconds = sum(count * float(avg or 0) for count, avg in measured)
    measured_count = sum(count for count, _ in measured)
    reads = {name: by_class.get(name, 0) for name in READ_CLASSES}
    reads["not_measurable"] = by_class.get(UNMEASURABLE, 0)
    reads["avg_seconds"] = round(seconds / measured_count, 2) if measured_count else None
    everything = measured_count + reads["not_measurable"]
    reads["not_measurable_percent"] = _ratio(reads["not_measurable"], everything)
    unsubscribes = conn.execute(select(func.count(func.distinct(consents.c.subscriber_id))).where(
        consents.c.kind == "unsubscribe", consents.c.form == f"campaign {campaign_id}",
        in_variant(campaign_id, variant, consents.c.subscriber_id))).scalar() or 0
    delivered = delivery["delivered"]
    return {
        "campaign_id": campaign_id, "variant": variant, "held": delivery["held"],
        "delivered": delivered, "failed": delivery["failed"], "in_doubt": delivery["in_doubt"],
        "pending": delivery["pending"], "total": delivery["total"],
        "opens": opens, "reads": reads, "clicks": clicks,
        "open_rate": _ratio(opens["human"], delivered),
        "ctr": _ratio(clicks["human"], delivered),
        "click_to_open": _ratio(clicks["human"], opens["human"]),
        "unsubscribes": unsubscribes, "unsubscribe_rate": _ratio(unsubscribes, delivered),
        "bounces": None, "complaints": None,
    }


def over_time(conn: Connection, campaign_id: int, unit: str = "hour",
              variant: int | None = None) -> dict[str, Any]:
    """Opens and clicks (total and human) per hour or day."""
    b = periods.bucket(ev.at, unit, conn.dialect.name).label("b")
    rows = conn.execute(select(b, ev.kind, func.count(), func.sum(case((HUMAN, 1), else_=0)))
                        .where(ev.campaign_id == campaign_id, ev.kind.in_((OPEN, CLICK)),
                               in_variant(campaign_id, variant))
                        .group_by(b, ev.kind).order_by(b)).all()
    if not rows:
        return {"labels": [], "opens": [], "clicks": [], "human_opens": [], "human_clicks": []}
    labels = periods.series(rows[0][0], rows[-1][0], unit, limit=24 * 60)
    position = {label: i for i, label in enumerate(labels)}
    out = {"labels": labels, **{k: [0] * len(labels) for k in ("opens", "clicks", "human_opens", "human_clicks")}}
    for label, kind, total, human in rows:
        if label in position:
            i = position[label]
            out[kind + "s"][i] = total
            out["human_" + kind + "s"][i] = int(human or 0)
    return out


def by_domain(conn: Connection, campaign_id: int, limit: int = 15,
              variant: int | None = None) -> list[dict[str, Any]]:
    """Per recipient domain: delivered, unique human opens and clicks, rates."""
    s = subscribers.c
    sent = dict(conn.execute(
        select(s.email_domain, func.count()).select_from(deliveries.join(subscribers, s.id == deliveries.c.subscriber_id))
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sent",
               true() if variant is None else deliveries.c.variant == variant)
        .group_by(s.email_domain).order_by(func.count().desc()).limit(limit)).all())
    if not sent:
        return []
    engaged = conn.execute(
        select(s.email_domain, ev.kind, func.count(func.distinct(ev.subscriber_id)))
        .select_from(tracking_events.join(subscribers, s.id == ev.subscriber_id))
        .where(ev.campaign_id == campaign_id, ev.kind.in_((OPEN, CLICK)), HUMAN,
               s.email_domain.in_(list(sent)), in_variant(campaign_id, variant))
        .group_by(s.email_domain, ev.kind)).all()
    counts = {(d, k): n for d, k, n in engaged}
    return [{"domain": d, "delivered": n, "opens": counts.get((d, OPEN), 0),
             "clicks": counts.get((d, CLICK), 0), "open_rate": _ratio(counts.get((d, OPEN), 0), n),
             "ctr": _ratio(counts.get((d, CLICK), 0), n)} for d, n in sent.items()]


@lru_cache(maxsize=4096)
def parse_agent(user_agent: str) -> tuple[str, str]:
    """(mail client or browser family, device: desktop/mobile/tablet/unknown)."""
    from user_agents import parse

    if not user_agent:
        return ("Unknown", "unknown")
    if "GoogleImageProxy" in user_agent or "ggpht.com" in user_agent:
        return ("Gmail (image proxy)", "unknown")
    if "YahooMailProxy" in user_agent:
        return ("Yahoo Mail (image proxy)", "unknown")
    agent = parse(user_agent)
    family = agent.browser.family
    if "Outlook" in user_agent or "Microsoft Office" in user_agent:
        family = "Outlook"
    elif "Thunderbird" in user_agent:
        family = "Thunderbird"
    elif user_agent.strip() == "Mozilla/5.0":
        family = "Apple Mail (privacy proxy)"
    elif family in ("Mobile Safari UI/WKWebView", "Apple Mail") or (
            "AppleWebKit" in user_agent and "Safari" not in user_agent and agent.os.family in ("Mac OS X", "iOS")):
        family = "Apple Mail"
    device = "mobile" if agent.is_mobile else "tablet" if agent.is_tablet else \
        "desktop" if agent.is_pc else "unknown"
    return (family or "Other", device)


def by_client(conn: Connection, campaign_id: int,
              variant: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """Opens by mail client and by device, from the distinct user agents (parsed once each)."""
    rows = conn.execute(select(ev.user_agent, func.count(func.distinct(ev.subscriber_id))).where(
        ev.campaign_id == campaign_id, ev.kind == OPEN, in_variant(campaign_id, variant))
        .group_by(ev.user_agent)).all()
    clients: dict[str, int] = {}
    devices: dict[str, int] = {}
    for agent, count in rows:
        family, device = parse_agent(agent or "")
        clients[family] = clients.get(family, 0) + count
        devices[device] = devices.get(device, 0) + count
    total = sum(clients.values())

    def listing(counts: dict[str, int]) -> list[dict[str, Any]]:
        return [{"name": k, "opens": v, "percent": _ratio(v, total)}
                for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    return {"clients": listing(clients), "devices": listing(devices)}


def recent_campaigns(conn: Connection, limit: int = 20) -> list[dict[str, Any]]:
    """Campaigns that started, newest first, with their headline figures (dashboard, index)."""
    rows = conn.execute(select(campaigns.c.id, campaigns.c.name, campaigns.c.state, campaigns.c.started_at)
                        .where(campaigns.c.started_at.is_not(None))
                        .order_by(campaigns.c.started_at.desc()).limit(limit)).mappings().all()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    sent = dict(conn.execute(select(deliveries.c.campaign_id, func.count()).where(
        deliveries.c.campaign_id.in_(ids), deliveries.c.state == "sent").group_by(deliveries.c.campaign_id)).all())
    engaged = conn.execute(select(ev.campaign_id, ev.kind, func.count(func.distinct(ev.subscriber_id))).where(
        and_(ev.campaign_id.in_(ids), ev.kind.in_((OPEN, CLICK)), HUMAN))
        .group_by(ev.campaign_id, ev.kind)).all()
    counts = {(c, k): n for c, k, n in engaged}
    out = []
    for r in rows:
        delivered = sent.get(r["id"], 0)
        opens, clicks = counts.get((r["id"], OPEN), 0), counts.get((r["id"], CLICK), 0)
        out.append({**r, "delivered": delivered, "opens": opens, "clicks": clicks,
                    "open_rate": _ratio(opens, delivered), "ctr": _ratio(clicks, delivered)})
    return out
