"""The campaign report: delivery from the ledger, opens, reading time, clicks, rates, over time,
by recipient domain and by mail client/device.

Human figures leave out events labelled machine (MPP prefetches, scanners, HEAD requests,
honeypot hits); totals include them. Rates use human unique figures:
CTR = unique human clickers / delivered, click-to-open = unique human clickers / unique human
openers. Reading-time averages leave out streams that could not be measured (image proxies).
Event figures come from the campaign roll-up that every event flush keeps
(tracking/campaign_rollup.py), not from the events themselves; delivery figures from the ledger.

`variant` (a split test's 1, 2, …) narrows every figure to the recipients whose ledger row
has that variant — its test portion plus, for the winner, the rest of the audience.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, func, select, true

from altkraft_onprem.audience.models import consents, subscribers
from altkraft_onprem.campaigns.models import campaigns, deliveries
from altkraft_onprem.db import periods
from altkraft_onprem.errors import NotFound
from altkraft_onprem.tracking.models import (
    CLICK,
    OPEN,
    READ,
    READ_CLASSES,
    UNMEASURABLE,
    campaign_agents,
    campaign_counts,
    campaign_hours,
    campaign_uniques,
    tracking_events,
)

from .feedback import figures as feedback_figures
from .feedback import totals as feedback_totals

ev = tracking_events.c


def _ratio(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def campaign_row(conn: Connection, campaign_id: int) -> dict[str, Any]:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None:
        raise NotFound("campaign %(campaign_id)s does not exist", campaign_id=campaign_id)
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


def _scoped(table, campaign_ids: list[int], variant: int | None) -> list:
    """Roll-up rows of these campaigns (one variant, or all of them summed by the caller)."""
    where = [table.c.campaign_id.in_(campaign_ids)]
    return where if variant is None else [*where, table.c.variant == variant]


def _people(conn: Connection, campaign_ids: list[int], variant: int | None = None,
            domains: list[str] | None = None) -> dict[tuple, int]:
    """(campaign, metric) -> people (with `domains`: (campaign, domain, metric))."""
    u = campaign_uniques.c
    where = _scoped(campaign_uniques, campaign_ids, variant)
    if domains is None:
        rows = conn.execute(select(u.campaign_id, u.metric, func.sum(u.people)).where(*where)
                            .group_by(u.campaign_id, u.metric))
        return {(c, m): int(n or 0) for c, m, n in rows}
    rows = conn.execute(select(u.campaign_id, u.domain, u.metric, func.sum(u.people))
                        .where(*where, u.domain.in_(domains)).group_by(u.campaign_id, u.domain, u.metric))
    return {(c, d, m): int(n or 0) for c, d, m, n in rows}


def summary(conn: Connection, campaign_id: int, variant: int | None = None) -> dict[str, Any]:
    """The figures of GET /api/v1/campaigns/{id}/report (of one split-test variant), read from
    the campaign roll-up (tracking/campaign_rollup.py)."""
    campaign_row(conn, campaign_id)
    delivery = delivery_counts(conn, campaign_id, variant)
    k = campaign_counts.c
    events: dict[tuple[str, bool, str], tuple[int, float]] = {}
    for kind, machine, read_class, count, seconds in conn.execute(
            select(k.kind, k.machine, k.read_class, func.sum(k.events), func.sum(k.read_seconds))
            .where(*_scoped(campaign_counts, [campaign_id], variant))
            .group_by(k.kind, k.machine, k.read_class)):
        events[(kind, bool(machine), read_class)] = (int(count or 0), float(seconds or 0))

    def total(kind: str, machine: bool | None = None) -> int:
        return sum(n for (k_, m, _), (n, _s) in events.items() if k_ == kind and machine in (None, m))
    people = _people(conn, [campaign_id], variant)
    opens = {"unique": people.get((campaign_id, OPEN), 0), "total": total(OPEN),
             "human": people.get((campaign_id, OPEN + "_h"), 0), "machine": total(OPEN, True)}
    clicks = {"unique": people.get((campaign_id, CLICK), 0), "total": total(CLICK),
              "human": people.get((campaign_id, CLICK + "_h"), 0), "machine": total(CLICK, True)}
    human_reads = {rc: value for (kind, machine, rc), value in events.items() if kind == READ and not machine}
    measured = [human_reads.get(name, (0, 0.0)) for name in READ_CLASSES]
    seconds = sum(sec for _, sec in measured)
    measured_count = sum(count for count, _ in measured)
    reads = {name: human_reads.get(name, (0, 0.0))[0] for name in READ_CLASSES}
    reads["not_measurable"] = human_reads.get(UNMEASURABLE, (0, 0.0))[0]
    reads["avg_seconds"] = round(seconds / measured_count, 2) if measured_count else None
    everything = measured_count + reads["not_measurable"]
    reads["not_measurable_percent"] = _ratio(reads["not_measurable"], everything)
    unsubscribes = conn.execute(select(func.count(func.distinct(consents.c.subscriber_id))).where(
        consents.c.kind == "unsubscribe", consents.c.campaign_id == campaign_id,
        in_variant(campaign_id, variant, consents.c.subscriber_id))).scalar() or 0
    delivered = delivery["delivered"]
    feedback = feedback_figures(conn, campaign_id, variant)
    return {
        "campaign_id": campaign_id, "variant": variant, "held": delivery["held"],
        "delivered": delivered, "failed": delivery["failed"], "in_doubt": delivery["in_doubt"],
        "pending": delivery["pending"], "total": delivery["total"],
        "opens": opens, "reads": reads, "clicks": clicks,
        "open_rate": _ratio(opens["human"], delivered),
        "ctr": _ratio(clicks["human"], delivered),
        "click_to_open": _ratio(clicks["human"], opens["human"]),
        "unsubscribes": unsubscribes, "unsubscribe_rate": _ratio(unsubscribes, delivered),
        "bounces": feedback["bounces"], "complaints": feedback["complaints"],
        "bounce_rate": _ratio(sum(feedback["bounces"].values()), delivery["total"] - delivery["pending"]),
        "complaint_rate": _ratio(feedback["complaints"], delivered),
        "by_provider": feedback["by_provider"],
    }


def over_time(conn: Connection, campaign_id: int, unit: str = "hour",
              variant: int | None = None) -> dict[str, Any]:
    """Opens and clicks (total and human) per hour or day (days are summed hours)."""
    h = campaign_hours.c
    buckets: dict[tuple[str, str], list[int]] = {}
    for hour, kind, machine, count in conn.execute(
            select(h.hour, h.kind, h.machine, func.sum(h.events))
            .where(*_scoped(campaign_hours, [campaign_id], variant)).group_by(h.hour, h.kind, h.machine)):
        label = hour if unit == "hour" else periods.label(periods.parse(hour, "hour"), unit)
        figures = buckets.setdefault((label, kind), [0, 0])
        figures[0] += int(count or 0)
        figures[1] += 0 if machine else int(count or 0)
    rows = sorted((label, kind, total, human) for (label, kind), (total, human) in buckets.items())
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
    found = _people(conn, [campaign_id], variant, domains=list(sent))
    engaged = [(d, kind, found.get((campaign_id, d, kind + "_h"), 0)) for d in sent for kind in (OPEN, CLICK)]
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
    """Openers by mail client and by device, from the user agent of each person's first open
    (parsed once per distinct agent)."""
    a = campaign_agents.c
    rows = conn.execute(select(a.user_agent, func.sum(a.people))
                        .where(*_scoped(campaign_agents, [campaign_id], variant)).group_by(a.user_agent)).all()
    rows = [(agent, int(count or 0)) for agent, count in rows if count]
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


def recent_campaigns(conn: Connection, limit: int = 20, *, only=None) -> list[dict[str, Any]]:
    """Campaigns that started, newest first, with their headline figures (dashboard, index);
    the transactional API's carriers have their own report; `only`: those whose lists are all
    among these (a role limited to some lists)."""
    query = (select(campaigns.c.id, campaigns.c.name, campaigns.c.state, campaigns.c.started_at)
             .where(campaigns.c.started_at.is_not(None), campaigns.c.transactional.is_(False))
             .order_by(campaigns.c.started_at.desc()))
    if only is not None:
        # Lists are JSON arrays: filtered here (people's campaigns are a few thousand at most).
        scoped = select(campaigns.c.id, campaigns.c.list_ids, campaigns.c.exclude_list_ids).where(
            campaigns.c.started_at.is_not(None), campaigns.c.workflow_id.is_(None))
        ids = [r.id for r in conn.execute(scoped)
               if r.list_ids and {*r.list_ids, *(r.exclude_list_ids or [])} <= only]
        query = query.where(campaigns.c.id.in_(ids))
    rows = conn.execute(query.limit(limit)).mappings().all()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    sent = dict(conn.execute(select(deliveries.c.campaign_id, func.count()).where(
        deliveries.c.campaign_id.in_(ids), deliveries.c.state == "sent").group_by(deliveries.c.campaign_id)).all())
    people = _people(conn, ids)
    engaged = [(c, kind, people.get((c, kind + "_h"), 0)) for c in ids for kind in (OPEN, CLICK)]
    counts = {(c, k): n for c, k, n in engaged}
    feedback = feedback_totals(conn, ids)
    out = []
    for r in rows:
        delivered = sent.get(r["id"], 0)
        opens, clicks = counts.get((r["id"], OPEN), 0), counts.get((r["id"], CLICK), 0)
        out.append({**r, "delivered": delivered, "opens": opens, "clicks": clicks,
                    "open_rate": _ratio(opens, delivered), "ctr": _ratio(clicks, delivered),
                    **feedback[r["id"]]})
    return out
