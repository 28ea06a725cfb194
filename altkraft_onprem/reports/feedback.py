"""Bounces and complaints per campaign, split-test variant and mailbox provider: a roll-up kept
by the email.bounced / email.complained reactions (reactions.py), so that reports — a lower
layer than inbound mail — read figures without reading inbound's tables.

bounce_class is hard, soft, policy, content or unknown for a bounce, "" for a complaint.
"""
from __future__ import annotations

from sqlalchemy import Column, Connection, Integer, String, Table, bindparam, func, select, update

from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db import metadata
from altkraft_onprem.delivery.providers import PROVIDER_NAMES

BOUNCE, COMPLAINT = "bounce", "complaint"
# The report's bounce figures (GET /api/v1/campaigns/{id}/report): content blocks count as
# policy (neither is the recipient's fault); unknown ones wait for review and are not counted.
REPORTED = {"hard": "hard", "soft": "soft", "policy": "policy", "content": "policy"}

campaign_feedback = Table(
    "campaign_feedback", metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("variant", Integer, primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("kind", String(12), primary_key=True),
    Column("bounce_class", String(12), primary_key=True),
    Column("count", Integer, nullable=False, default=0),
)


_VARIANT = select(deliveries.c.variant).where(deliveries.c.campaign_id == bindparam("campaign"),
                                              deliveries.c.subscriber_id == bindparam("subscriber"))
_KEY = [campaign_feedback.c[name] == bindparam("k_" + name)
        for name in ("campaign_id", "variant", "provider", "kind", "bounce_class")]
_ADD = update(campaign_feedback).where(*_KEY).values(count=campaign_feedback.c.count + bindparam("by"))
_NEW = campaign_feedback.insert()


def count(conn: Connection, campaign_id: int | None, subscriber_id: int, provider: str,
          kind: str, bounce_class: str = "", by: int = 1) -> None:
    """Adds `by` (may be negative) to one figure (statements built once: it runs per bounce)."""
    if campaign_id is None:
        return
    variant = conn.execute(_VARIANT, {"campaign": campaign_id, "subscriber": subscriber_id}).scalar() or 0
    key = {"campaign_id": campaign_id, "variant": variant, "provider": provider, "kind": kind,
           "bounce_class": bounce_class}
    if not conn.execute(_ADD, {**{"k_" + k: v for k, v in key.items()}, "by": by}).rowcount:
        conn.execute(_NEW, {**key, "count": by})


def count_many(conn: Connection, items: list[tuple[int | None, int, str, str, str]]) -> None:
    """`count` of many at once: (campaign_id, subscriber_id, provider, kind, bounce_class)
    each, added up per figure first (a batch of bounces touches a few figures)."""
    people: dict[int, set[int]] = {}
    for campaign_id, subscriber_id, *_rest in items:
        if campaign_id is not None:
            people.setdefault(campaign_id, set()).add(subscriber_id)
    variants: dict[tuple[int, int], int] = {}
    for campaign_id, ids in people.items():
        for subscriber_id, variant in conn.execute(select(deliveries.c.subscriber_id, deliveries.c.variant).where(
                deliveries.c.campaign_id == campaign_id, deliveries.c.subscriber_id.in_(ids))):
            variants.setdefault((campaign_id, subscriber_id), variant or 0)
    totals: dict[tuple, int] = {}
    for campaign_id, subscriber_id, provider, kind, bounce_class in items:
        if campaign_id is not None:
            key = (campaign_id, variants.get((campaign_id, subscriber_id), 0), provider, kind, bounce_class)
            totals[key] = totals.get(key, 0) + 1
    names = ("campaign_id", "variant", "provider", "kind", "bounce_class")
    for key, by in totals.items():
        values = dict(zip(names, key, strict=True))
        if not conn.execute(_ADD, {**{"k_" + k: v for k, v in values.items()}, "by": by}).rowcount:
            conn.execute(_NEW, {**values, "count": by})


def figures(conn: Connection, campaign_id: int, variant: int | None = None) -> dict:
    """{"bounces": {hard, soft, policy}, "complaints": n, "by_provider": [{provider, hard,
    soft, policy, complaints}]} of one campaign (one split-test variant)."""
    f = campaign_feedback.c
    query = select(f.provider, f.kind, f.bounce_class, func.sum(f.count)).where(f.campaign_id == campaign_id)
    if variant is not None:
        query = query.where(f.variant == variant)
    totals = {"hard": 0, "soft": 0, "policy": 0}
    complaints = 0
    per: dict[str, dict] = {}
    for provider, kind, bounce_class, number in conn.execute(query.group_by(f.provider, f.kind, f.bounce_class)):
        number = int(number or 0)
        row = per.setdefault(provider, {"provider": provider, "hard": 0, "soft": 0, "policy": 0,
                                        "complaints": 0})
        if kind == COMPLAINT:
            complaints += number
            row["complaints"] += number
        elif bounce_class in REPORTED:
            totals[REPORTED[bounce_class]] += number
            row[REPORTED[bounce_class]] += number
    order = {name: index for index, name in enumerate(PROVIDER_NAMES)}
    return {"bounces": totals, "complaints": complaints,
            "by_provider": sorted(per.values(), key=lambda r: order.get(r["provider"], 99))}


def totals(conn: Connection, campaign_ids: list[int]) -> dict[int, dict]:
    """{campaign: {"bounces": hard + soft + policy, "complaints": n}} for lists of campaigns."""
    f = campaign_feedback.c
    out = {c: {"bounces": 0, "complaints": 0} for c in campaign_ids}
    rows = conn.execute(select(f.campaign_id, f.kind, f.bounce_class, func.sum(f.count))
                        .where(f.campaign_id.in_(campaign_ids))
                        .group_by(f.campaign_id, f.kind, f.bounce_class))
    for campaign_id, kind, bounce_class, number in rows:
        if kind == COMPLAINT:
            out[campaign_id]["complaints"] += int(number or 0)
        elif bounce_class in REPORTED:
            out[campaign_id]["bounces"] += int(number or 0)
    return out
