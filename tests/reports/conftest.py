"""Fixture data for report tests: rows written straight into the tables (the figures must be
computable by hand, with exact timestamps)."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from altkraft_onprem.audience.models import (
    lists,
    subscriber_activity,
    subscriber_lists,
    subscribers,
)
from altkraft_onprem.tracking.models import tracking_events


def at(text: str) -> datetime:
    """'2026-01-05 10:00' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def add_list(conn, name: str) -> int:
    now = at("2025-12-01 00:00")
    return conn.execute(insert(lists).values(name=name, created_at=now, updated_at=now)).inserted_primary_key[0]


def add_subscriber(conn, email: str, created: str, source: str = "", lists_joined=()) -> int:
    when = at(created)
    sid = conn.execute(insert(subscribers).values(
        email=email, email_domain=email.split("@")[1], state="active", custom={}, source=source,
        created_at=when, updated_at=when)).inserted_primary_key[0]
    for list_id in lists_joined:
        join(conn, list_id, sid, created)
    return sid


def join(conn, list_id: int, subscriber_id: int, when: str, left: str | None = None) -> None:
    conn.execute(insert(subscriber_lists).values(
        list_id=list_id, subscriber_id=subscriber_id, status="unsubscribed" if left else "confirmed",
        created_at=at(when), updated_at=at(left or when), unsubscribed_at=at(left) if left else None))


def activity(conn, subscriber_id: int, kind: str, when: str) -> None:
    conn.execute(insert(subscriber_activity).values(subscriber_id=subscriber_id, kind=kind, at=at(when),
                                                    details="{}"))


def event(conn, kind: str, subscriber_id: int, when: str, *, campaign_id: int = 1, version_id: int = 1,
          link_index: int | None = None, machine: bool = False, reason: str | None = None,
          read_seconds: float | None = None, read_class: str | None = None, user_agent: str = "") -> None:
    """One event, stored as a flush of the event buffer stores it (with the campaign roll-up)."""
    from altkraft_onprem.tracking import campaign_rollup

    row = dict(at=at(when), kind=kind, campaign_id=campaign_id, subscriber_id=subscriber_id, version_id=version_id,
               link_index=link_index, machine=machine, reason=reason, read_seconds=read_seconds,
               read_class=read_class, user_agent=user_agent, ip="127.0.0.1")
    conn.execute(insert(tracking_events).values(**row))
    campaign_rollup.record(conn, [row])


def make_campaign(conn, name: str, html: str, list_id: int, utm: dict | None = None,
                  extra_versions: tuple[str, ...] = ()) -> dict:
    """A message (version 1 = html, then extra versions) and a campaign pinned to version 1."""
    from sqlalchemy import select, update

    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.campaigns import service as campaigns
    from altkraft_onprem.campaigns.models import campaigns as campaigns_table
    from altkraft_onprem.messages import service as messages
    from altkraft_onprem.messages.models import message_versions

    actor = system_actor()
    message_id, _ = messages.create_message(conn, actor, name, subject="Hello", html=html)
    for other in extra_versions:
        messages.save_version(conn, actor, message_id, subject="Hello", html=other)
    ids = [v for (v,) in conn.execute(select(message_versions.c.id).where(
        message_versions.c.message_id == message_id).order_by(message_versions.c.version))]
    campaign_id = campaigns.create_campaign(conn, actor, name=name, message_id=message_id,
                                            list_ids=[list_id], from_email="news@example.com",
                                            utm=utm or {})
    conn.execute(update(campaigns_table).where(campaigns_table.c.id == campaign_id).values(
        version_id=ids[0], state="finished", started_at=at("2026-04-01 09:00")))
    return {"id": campaign_id, "message_id": message_id, "version_ids": ids}


def deliver(conn, campaign_id: int, subscriber_id: int, state: str = "sent",
            done: str = "2026-04-01 09:00") -> None:
    from altkraft_onprem.campaigns.models import deliveries

    conn.execute(insert(deliveries).values(campaign_id=campaign_id, subscriber_id=subscriber_id,
                                           variant=0, state=state, attempts=1, done_at=at(done)))
