"""The audience services other domains call (campaigns, bounces, rendering).

    audience_query(conn, list_ids, segment_ids=(), exclude_list_ids=(), exclude_segment_ids=())
    is_sendable(conn, subscriber_id, list_ids)
    suppress(conn, actor, email=None, domain=None, reason, source)
    suppress_addresses(conn, actor, [(email, reason, source), ...])   many at once, in order
    unsubscribe(conn, subscriber_id, list_id=None, campaign_id=None, ip, user_agent, form)
    render_context(conn, subscriber_ids)
"""
from __future__ import annotations

from sqlalchemy import Connection, and_, or_, select, update

from altkraft_onprem.access.models import system_actor
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound

from . import segments as segment_service
from .activity import log_activity, record_consent
from .models import subscriber_lists, subscribers
from .subscribers import render_context, set_membership
from .suppression import has_address_entry, not_suppressed, suppress, suppress_addresses

__all__ = ["audience_query", "is_sendable", "suppress", "suppress_addresses", "unsubscribe",
           "render_context", "eligible"]


def _confirmed_on(list_ids):
    return select(subscriber_lists.c.subscriber_id).where(
        subscriber_lists.c.subscriber_id == subscribers.c.id,
        subscriber_lists.c.list_id.in_(list(list_ids)),
        subscriber_lists.c.status == "confirmed").exists()


def eligible(conn: Connection, list_ids, segment_ids=(), exclude_list_ids=(),
             exclude_segment_ids=()):
    """The WHERE of audience_query."""
    where = [subscribers.c.deleted_at.is_(None), subscribers.c.state == "active", not_suppressed(),
             _confirmed_on(list_ids)]
    if segment_ids:
        where.append(or_(*[segment_service.segment_expr(conn, s) for s in segment_ids]))
    if exclude_list_ids:
        excluded = select(subscriber_lists.c.subscriber_id).where(
            subscriber_lists.c.subscriber_id == subscribers.c.id,
            subscriber_lists.c.list_id.in_(list(exclude_list_ids))).exists()
        where.append(~excluded)
    for segment_id in exclude_segment_ids:
        where.append(~segment_service.segment_expr(conn, segment_id))
    return and_(*where)


def audience_query(conn: Connection, list_ids, segment_ids=(), exclude_list_ids=(),
                   exclude_segment_ids=()):
    """SELECT subscribers.id of everyone a campaign to these lists may reach: active, not in
    the trash, not suppressed (address or domain), confirmed on at least one of the lists,
    matching one of the segments if any are given, on none of the excluded lists/segments."""
    return select(subscribers.c.id).where(eligible(
        conn, list_ids, segment_ids, exclude_list_ids, exclude_segment_ids))


def list_members(list_id: int | None, statuses, stamp: str = "created_at", since=None):
    """SELECT subscriber ids with a membership of the list (of any list: None) in one of these
    statuses — since a moment, by `stamp`: created_at (joined), confirmed_at, unsubscribed_at."""
    where = [subscriber_lists.c.status.in_(list(statuses))]
    if list_id is not None:
        where.append(subscriber_lists.c.list_id == list_id)
    if since is not None:
        where.append(subscriber_lists.c[stamp] >= since)
    return select(subscriber_lists.c.subscriber_id).where(*where).distinct()


def first_confirmed_list(conn: Connection, subscriber_ids, list_ids) -> dict[int, int]:
    """Per subscriber, the first of `list_ids` (in that order) they are a confirmed member of."""
    order = {list_id: position for position, list_id in enumerate(list_ids)}
    found: dict[int, int] = {}
    rows = conn.execute(select(subscriber_lists.c.subscriber_id, subscriber_lists.c.list_id).where(
        subscriber_lists.c.subscriber_id.in_(list(subscriber_ids)),
        subscriber_lists.c.list_id.in_(list(list_ids)), subscriber_lists.c.status == "confirmed"))
    for subscriber_id, list_id in rows:
        if subscriber_id not in found or order[list_id] < order[found[subscriber_id]]:
            found[subscriber_id] = list_id
    return found


def is_sendable(conn: Connection, subscriber_id: int, list_ids) -> bool:
    """Send-time re-check of one recipient (they may have unsubscribed meanwhile)."""
    query = select(subscribers.c.id).where(subscribers.c.id == subscriber_id,
                                            eligible(conn, list_ids))
    return conn.execute(query).first() is not None


def unsubscribe(conn: Connection, subscriber_id: int, list_id: int | None = None,
                campaign_id: int | None = None, ip: str = "", user_agent: str = "",
                form: str = "") -> list[int]:
    """From one list, or (list_id None) from every list plus the suppression list — for every
    way out: the one-click POST, the unsubscribe page, a mailto request, the preference
    center. `campaign_id`: the campaign whose link or address was used (kept on the consent
    record; its report counts it); `form`: the way ("one-click", "mailto", …). Returns the
    list ids whose status changed. Idempotent: a repeat changes and records nothing."""
    row = conn.execute(select(subscribers.c.id, subscribers.c.email).where(
        subscribers.c.id == subscriber_id)).first()
    if row is None:
        raise NotFound("no such subscriber")
    query = select(subscriber_lists.c.list_id).where(
        subscriber_lists.c.subscriber_id == subscriber_id,
        subscriber_lists.c.status != "unsubscribed")
    if list_id is not None:
        query = query.where(subscriber_lists.c.list_id == list_id)
    changed = list(conn.execute(query).scalars())
    newly_suppressed = list_id is None and not has_address_entry(conn, row.email)
    if not changed and not newly_suppressed:
        return []
    consent = {"ip": ip, "user_agent": user_agent, "form": form or "link", "campaign_id": campaign_id}
    for target in changed:
        set_membership(conn, subscriber_id, target, "unsubscribed")
        record_consent(conn, subscriber_id, target, "unsubscribe", **consent)
    if list_id is None:
        suppress(conn, system_actor("unsubscribe"), email=row.email,
                 reason="unsubscribed from everything", source="unsubscribe")
        if not changed:
            record_consent(conn, subscriber_id, None, "unsubscribe", **consent)
    log_activity(conn, subscriber_id, "unsubscribed", list_id=list_id, campaign_id=campaign_id,
                 lists=changed)
    conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                 .values(updated_at=utcnow()))
    return changed
