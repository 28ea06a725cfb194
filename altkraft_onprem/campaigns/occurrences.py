"""Campaigns that belong to a workflow's send-email node: the ledger takes one row per
occurrence (a person reaching the node), queued by the workflow's step in its own
transaction, and the ordinary senders deliver it — journal, leases, in-doubt rules and all.

Such a campaign has no lists: whoever the workflow queues is sendable while they are active,
not in the trash and not suppressed. It stays running while the workflow runs.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from altkraft_onprem import db
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.audience.models import normalise_email, subscribers
from altkraft_onprem.audience.suppression import not_suppressed
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages.render import check_version
from altkraft_onprem.messages.service import get_version, require_sendable

from .models import UTM_KEYS, campaigns, deliveries


def create_for_node(conn: Connection, actor: Actor, *, workflow_id: int, name: str,
                    message_id: int, from_email: str, from_name: str = "",
                    utm: dict[str, str] | None = None) -> int:
    """A running campaign for one send node of a published workflow version, with the
    message's current version pinned."""
    require_sendable(conn, message_id)
    version = get_version(conn, message_id)
    problems = check_version(version)
    if problems:
        raise ServiceError("the message has template errors: %(problems)s", "message_id", problems=problems[0])
    try:
        sender = normalise_email(from_email)
    except ValueError as exc:
        raise ServiceError.like(exc, "from_email") from None
    now = utcnow()
    campaign_id = conn.execute(insert(campaigns).values(
        name=name[:200], state="running", message_id=message_id, version_id=version["id"],
        from_email=sender, from_name=(from_name or "")[:200], reply_to=None, list_ids=[],
        segment_ids=[], exclude_list_ids=[], exclude_segment_ids=[],
        utm={k: v for k, v in (utm or {}).items() if k in UTM_KEYS and v}, link_utm={},
        track_opens=True, track_clicks=True, timezone="UTC", ledger_built=True, total=0,
        created_at=now, updated_at=now, created_by=actor.label[:320], started_at=now,
        workflow_id=workflow_id).returning(campaigns.c.id)).scalar_one()
    record(conn, actor, "campaign.create", "campaign", campaign_id, workflow_id=workflow_id)
    return campaign_id


def stop_for_workflow(conn: Connection, workflow_id: int) -> int:
    """The workflow was archived: its campaigns finish (queued rows are cancelled)."""
    ids = list(conn.execute(select(campaigns.c.id).where(
        campaigns.c.workflow_id == workflow_id, campaigns.c.state == "running")).scalars())
    if not ids:
        return 0
    now = utcnow()
    conn.execute(update(deliveries).where(deliveries.c.campaign_id.in_(ids),
                                          deliveries.c.state == "queued").values(
        state="cancelled", done_at=now, reply="workflow archived"))
    return conn.execute(update(campaigns).where(campaigns.c.id.in_(ids)).values(
        state="finished", finished_at=now, updated_at=now)).rowcount


def queue_many(conn: Connection, campaign_id: int,
               rows: list[tuple[int, int, dict[str, Any]]]) -> set[tuple[int, int]]:
    """Ledger rows for these (subscriber, occurrence, context); returns the (subscriber,
    occurrence) pairs queued now — none for a pair already in the ledger (a replayed step)."""
    queued: set[tuple[int, int]] = set()
    for chunk in db.chunked(rows, 1000):
        queued.update(conn.execute(db.insert_ignoring_conflicts(
            conn, deliveries, ["campaign_id", "subscriber_id", "occurrence"]).returning(
            deliveries.c.subscriber_id, deliveries.c.occurrence), [
            {"campaign_id": campaign_id, "subscriber_id": subscriber_id, "occurrence": occurrence,
             "variant": 0, "state": "queued", "attempts": 0, "test_group": False, "context": context}
            for subscriber_id, occurrence, context in chunk]).all())
    if queued:
        conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(
            total=campaigns.c.total + len(queued)))
    return queued


def delivered(conn: Connection, campaign_ids: list[int]) -> dict[int, int]:
    """{campaign: messages the relay accepted} (a workflow split's figures)."""
    found = dict(conn.execute(select(deliveries.c.campaign_id, func.count()).where(
        deliveries.c.campaign_id.in_(campaign_ids), deliveries.c.state == "sent")
        .group_by(deliveries.c.campaign_id)).all())
    return {campaign_id: found.get(campaign_id, 0) for campaign_id in campaign_ids}


def sendable(conn: Connection, subscriber_ids: list[int]) -> set[int]:
    return set(conn.execute(select(subscribers.c.id).where(and_(
        subscribers.c.id.in_(subscriber_ids), subscribers.c.deleted_at.is_(None),
        subscribers.c.state == "active", not_suppressed()))).scalars())


def events_of(conn: Connection, campaign_id: int, subscriber_ids: list[int]) -> dict[int, dict]:
    """The triggering event of each person's leased row (what {{ event.… }} shows)."""
    rows = conn.execute(select(deliveries.c.subscriber_id, deliveries.c.context).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.subscriber_id.in_(subscriber_ids),
        deliveries.c.state == "leased"))
    return {sid: context or {} for sid, context in rows}
