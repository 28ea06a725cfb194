"""Circuit breakers per mailbox provider: while the breaker of Gmail (Outlook, Mail.ru, …) is
open, no campaign sends there. Inbound mail opens it when the provider refuses or reports too
much of what a campaign sent there (inbound/monitor.py); a person closes it again (audited),
which puts the rows that waited back in the queue at once.

The senders hold a row for a provider whose breaker is open the way they hold a temporary
failure: back to the queue with a later attempt time, the attempt not counted, the reason
in its reply (sending/sender.py); before they claim, the send run does the same to the due
rows of subscribers at such a provider in one statement (`defer_held`), so those are not
claimed one by one every RECHECK while the breaker stays open. It never reaches a relay, so a resend is as impossible as
ever; a campaign whose other recipients are done waits, running, for those rows. (Not the
ledger's `held` state: its marks are a split test's and a warm-up's, which release by them.)
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select, update

from altkraft_onprem.access.models import Actor, system_actor
from altkraft_onprem.access.service import record
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.providers import PROVIDER_NAMES, PROVIDERS
from altkraft_onprem.errors import Conflict, NotFound

from .models import campaigns, deliveries, provider_breakers

# A held row is tried again this much later (or at once when the breaker is closed): a
# sender then holds it again while the breaker stays open.
RECHECK = timedelta(minutes=15)
# The reply a held row carries (the breaker's close finds the rows it held by it).
HELD_PREFIX = "held: sending to {provider} is paused"


def held_reply(provider: str, reason: str) -> str:
    return f"{HELD_PREFIX.format(provider=provider)}: {reason}"[:1000]


def at_provider(provider: str):
    """A condition on subscribers.email_domain: the person's mailbox is at that provider."""
    domains = subscribers.c.email_domain
    if provider in PROVIDERS:
        return domains.in_(PROVIDERS[provider])
    return domains.not_in([d for names in PROVIDERS.values() for d in names])


def is_open(found: dict | None) -> bool:
    """Whether a breaker (get's row, None: never tripped) stops sending to its provider."""
    return found is not None and found["state"] == "open"


def open_ones(conn: Connection) -> dict[str, str]:
    """{provider: reason} of the open breakers (the senders ask once per batch)."""
    return {b["provider"]: b["reason"] for b in list_all(conn) if is_open(b)}


def get(conn: Connection, provider: str) -> dict | None:
    """The provider's breaker (open or closed), None when it never tripped."""
    row = conn.execute(select(provider_breakers).where(provider_breakers.c.provider == provider)).first()
    return dict(row._mapping) if row else None


def list_all(conn: Connection) -> list[dict]:
    """Every provider's breaker that ever tripped, open ones first."""
    rows = conn.execute(select(provider_breakers).order_by(
        (provider_breakers.c.state == "open").desc(), provider_breakers.c.opened_at.desc()))
    return [dict(r._mapping) for r in rows]


def trip(conn: Connection, provider: str, reason: str, campaign_id: int | None,
         figures: dict | None = None) -> bool:
    """Opens the provider's breaker (False: it was open already). `reason` in English for
    the logs and the audit log; `figures` ({blocked, messages, percent, limit}) for pages."""
    if provider not in PROVIDER_NAMES:
        raise ValueError(f"unknown provider {provider!r}")
    found = get(conn, provider)
    now = utcnow()
    values = {"state": "open", "reason": reason[:2000], "campaign_id": campaign_id, "figures": figures,
              "opened_at": now, "closed_at": None, "closed_by": None}
    if found is None:
        conn.execute(provider_breakers.insert().values(provider=provider, **values))
    elif is_open(found):
        return False
    else:
        conn.execute(update(provider_breakers).where(provider_breakers.c.provider == provider,
                                                     provider_breakers.c.state == "closed").values(**values))
    record(conn, system_actor("inbound mail"), "breaker.open", "provider", provider, reason=reason,
           campaign_id=campaign_id)
    return True


def defer_held(conn: Connection, campaign_id: int, now: datetime | None = None) -> int:
    """The campaign's queued rows due now whose recipient is a subscriber at a provider with
    an open breaker wait RECHECK more, marked as a sender's hold marks them: one statement per
    open breaker instead of a claim and a ledger write per row (the send run calls this, as it
    defers a quiet zone). A row of an address outside the audience (transactional), or one
    whose breaker opened after this, is held by the sender when claimed."""
    now = now or utcnow()
    moved = 0
    for provider, reason in open_ones(conn).items():
        d = deliveries.c
        moved += conn.execute(update(deliveries).where(
            d.campaign_id == campaign_id, d.state == "queued",
            or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
            d.subscriber_id.in_(select(subscribers.c.id).where(at_provider(provider)))).values(
            next_attempt_at=now + RECHECK, reply=held_reply(provider, reason))).rowcount
    return moved


def close(conn: Connection, actor: Actor, provider: str) -> list[int]:
    """Closes an open breaker: sending to the provider resumes, its held rows are due at once.
    Returns the running campaigns that have rows waiting (to be woken)."""
    found = get(conn, provider) if provider in PROVIDER_NAMES else None
    if found is None:
        raise NotFound("no breaker for %(provider)s", provider=provider)
    if not is_open(found):
        raise Conflict("sending to %(provider)s is not paused", provider=provider)
    now = utcnow()
    conn.execute(update(provider_breakers).where(provider_breakers.c.provider == provider).values(
        state="closed", closed_at=now, closed_by=actor.label[:320]))
    live = select(campaigns.c.id).where(campaigns.c.state.in_(("running", "paused")))
    held = and_(deliveries.c.campaign_id.in_(live), deliveries.c.state == "queued",
                deliveries.c.reply.like(HELD_PREFIX.format(provider=provider) + "%"))
    woken = list(conn.execute(select(deliveries.c.campaign_id).where(held).distinct()).scalars())
    released = conn.execute(update(deliveries).where(held).values(next_attempt_at=None)).rowcount
    record(conn, actor, "breaker.close", "provider", provider, released=released,
           reason=found["reason"])
    return woken


def held(conn: Connection, campaign_id: int) -> dict[str, int]:
    """{provider: rows of this campaign held for its open breaker}."""
    out = {}
    for provider in open_ones(conn):
        out[provider] = conn.execute(select(func.count()).select_from(deliveries).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == "queued",
            deliveries.c.reply.like(HELD_PREFIX.format(provider=provider) + "%"))).scalar_one()
    return out
