"""Trash purge after the retention, GDPR export and erasure, render_context for messages."""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.audience import gdpr, service, subscribers, trash
from altkraft_onprem.audience.models import consents, subscriber_activity
from altkraft_onprem.audience.models import subscribers as table
from altkraft_onprem.db.types import utcnow

from .conftest import ACTOR


def test_purge_erases_only_what_is_older_than_the_retention(env, people):
    list_id = people.list("purge-" + uuid.uuid4().hex[:6])
    old = people.add(f"old-{uuid.uuid4().hex[:6]}@example.com", [list_id])
    new = people.add(f"new-{uuid.uuid4().hex[:6]}@example.com", [list_id])
    with db.write(env.engine) as conn:
        trash.delete_to_trash(conn, ACTOR, ids=[old, new])
        conn.execute(update(table).where(table.c.id == old)
                     .values(deleted_at=utcnow() - timedelta(days=31)))
        assert trash.purge(conn, 30) == 1
        remaining = set(conn.execute(select(table.c.id).where(table.c.id.in_([old, new]))).scalars())
    assert remaining == {new}


def test_purge_job_uses_the_setting(env, people):
    from altkraft_onprem.audience.jobs import purge_trash
    sid = people.add(f"job-{uuid.uuid4().hex[:6]}@example.com")
    with db.write(env.engine) as conn:
        trash.delete_to_trash(conn, ACTOR, ids=[sid])
        conn.execute(update(table).where(table.c.id == sid)
                     .values(deleted_at=utcnow() - timedelta(days=400)))
    purge_trash.call_local()
    with db.read(env.engine) as conn:
        assert conn.execute(select(table.c.id).where(table.c.id == sid)).first() is None


def test_gdpr_export_has_profile_lists_consents_activity(env, people):
    list_id = people.list("gdpr-" + uuid.uuid4().hex[:6])
    sid = people.add(f"g-{uuid.uuid4().hex[:6]}@example.com", [list_id], first_name="Gia",
                     birth_date="1990-02-03")
    with db.read(env.engine) as conn:
        data = gdpr.export_person(conn, sid)
    assert data["profile"]["first_name"] == "Gia" and data["profile"]["birth_date"] == "1990-02-03"
    assert data["lists"][0]["list_id"] == list_id
    assert data["consents"] and data["activity"]


def test_gdpr_erasure_removes_history_and_keeps_no_address_in_audit(env, people):
    email = f"erase-{uuid.uuid4().hex[:6]}@example.com"
    sid = people.add(email, [people.list("er-" + uuid.uuid4().hex[:6])])
    with db.write(env.engine) as conn:
        gdpr.erase_person(conn, ACTOR, sid)
    with db.read(env.engine) as conn:
        assert subscribers.find_by_email(conn, email) is None
        for t in (consents, subscriber_activity):
            assert conn.execute(select(t.c.id).where(t.c.subscriber_id == sid)).first() is None
        from altkraft_onprem.access.models import audit_log
        details = conn.execute(select(audit_log.c.details).where(
            audit_log.c.action == "subscriber.erase", audit_log.c.target_id == str(sid))).scalar()
    assert email not in details


def test_render_context_has_standard_and_custom_fields(env, people):
    from altkraft_onprem.audience import fields
    key = "ctx_" + uuid.uuid4().hex[:6]
    with db.write(env.engine) as conn:
        fields.create_field(conn, ACTOR, key, "Ctx", "number")
    sid = people.add(f"r-{uuid.uuid4().hex[:6]}@example.com", first_name="Rae",
                     custom={key: "42"})
    with db.read(env.engine) as conn:
        context = service.render_context(conn, [sid])[sid]
    assert context["first_name"] == "Rae" and context["custom"] == {key: 42}
    assert context["last_name"] == "" and context["created_at"]


def test_unsubscribe_service_is_idempotent(env, people):
    list_id = people.list("un-" + uuid.uuid4().hex[:6])
    sid = people.add(f"u-{uuid.uuid4().hex[:6]}@example.com", [list_id])
    with db.write(env.engine) as conn:
        assert service.unsubscribe(conn, sid, list_id, campaign_id=3, ip="1.2.3.4") == [list_id]
        assert service.unsubscribe(conn, sid, list_id) == []
        assert not service.is_sendable(conn, sid, [list_id])


def test_timeline_shows_opens_and_marks_machine_ones(env, people):
    from sqlalchemy import insert

    from altkraft_onprem.audience.activity import timeline
    from altkraft_onprem.tracking.models import tracking_events
    sid = people.add(f"tl-{uuid.uuid4().hex[:6]}@example.com")
    base = {"version_id": 1, "link_index": None, "read_seconds": None, "read_class": None,
            "user_agent": "x", "ip": "", "campaign_id": 9, "subscriber_id": sid}
    with db.write(env.engine) as conn:
        conn.execute(insert(tracking_events), [
            {**base, "at": utcnow(), "kind": "open", "machine": True, "reason": "mpp"},
            {**base, "at": utcnow(), "kind": "click", "machine": False, "reason": None,
             "link_index": 2}])
    with db.read(env.engine) as conn:
        items = {i["kind"]: i["details"] for i in timeline(conn, sid)}
    assert items["opened"]["machine"] == "mpp" and items["clicked"]["link_index"] == 2


def _tracked(conn, sid: int) -> None:
    """An open and a click of `sid`, stored with the cohort roll-up as a flush stores them."""
    from altkraft_onprem.tracking import rollup
    from altkraft_onprem.tracking.models import tracking_events

    rows = [dict(at=utcnow(), kind=kind, campaign_id=7, subscriber_id=sid, version_id=1,
                 link_index=0 if kind == "click" else None, machine=False, reason=None,
                 read_seconds=None, read_class=None, user_agent="Thunderbird/128", ip="203.0.113.9")
            for kind in ("open", "click")]
    conn.execute(tracking_events.insert(), rows)
    rollup.record(conn, rows)


def _tracking_rows(conn, sid: int) -> dict[str, int]:
    from sqlalchemy import func

    from altkraft_onprem.tracking.models import (
        engagement_activity,
        engagement_seen,
        tracking_events,
    )

    return {t.name: conn.execute(select(func.count()).select_from(t).where(t.c.subscriber_id == sid)).scalar()
            for t in (tracking_events, engagement_seen, engagement_activity)}


def test_erasure_and_purge_take_the_persons_tracking_data(env, people):
    list_id = people.list("track-" + uuid.uuid4().hex[:6])
    erased, purged, kept = (people.add(f"{n}-{uuid.uuid4().hex[:6]}@example.com", [list_id])
                            for n in ("erased", "purged", "kept"))
    with db.write(env.engine) as conn:
        for sid in (erased, purged, kept):
            _tracked(conn, sid)
    with db.read(env.engine) as conn:
        assert _tracking_rows(conn, erased) == {"tracking_events": 2, "engagement_seen": 4,
                                                "engagement_activity": 4}
    with db.write(env.engine) as conn:
        gdpr.erase_person(conn, ACTOR, erased)
        trash.delete_to_trash(conn, ACTOR, ids=[purged])
        conn.execute(update(table).where(table.c.id == purged).values(deleted_at=utcnow() - timedelta(days=400)))
        trash.purge(conn, 30)
    with db.read(env.engine) as conn:
        assert set(_tracking_rows(conn, erased).values()) == {0}
        assert set(_tracking_rows(conn, purged).values()) == {0}
        assert _tracking_rows(conn, kept)["tracking_events"] == 2
