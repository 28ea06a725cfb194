"""Triggers the clock drives, through the real service: birthdays at a local time in each
person's zone (and none for a date already past at activation), a one-off date field with an
offset, a recurring schedule, and "not opened / not clicked within N" of a campaign's email
(human events only; the email sent through a real SMTP sink)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience import segments
from altkraft_onprem.automation import jobs, scheduled
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.messages import service as messages
from tests.campaigns.helpers import record_events
from tests.conftest import Env

from .conftest import sending_env
from .helpers import (
    ACTOR,
    chain,
    enroll,
    entered,
    fields_of,
    person,
    published,
    run_later,
    uid,
)


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, module_smtp_sink) -> Env:
    yield from sending_env(template_db, tmp_path_factory, module_smtp_sink)


def tick(env, now: datetime) -> int:
    """The minute tick's clock triggers as they would run at `now` (then the runner)."""
    with env.app.app_context():
        return scheduled.run_due(env.engine, now=now, wake=jobs.wake)


def next_nine(now: datetime, zone: str) -> datetime:
    """The first 09:00 local in `zone` after now (UTC)."""
    local = now.astimezone(ZoneInfo(zone))
    day = local.date() if local.time() < time(9) else local.date() + timedelta(days=1)
    return datetime.combine(day, time(9), tzinfo=ZoneInfo(zone)).astimezone(ZoneInfo("UTC"))


def born(moment: datetime, zone: str) -> str:
    """A birth date in 1992 whose month and day are `moment`'s local date in `zone`."""
    return moment.astimezone(ZoneInfo(zone)).date().replace(year=1992).isoformat()


def test_birthdays_fire_at_nine_local_in_each_persons_zone_and_only_once(env):
    workflow_id = published(env, chain(("g", "goal", {"name": "birthday"}), trigger={
        "type": "date_field", "field": "birth_date", "time": "09:00"},
        entry={"reentry": "every_time"}))
    now = utcnow()
    tokyo_at, york_at = next_nine(now, "Asia/Tokyo"), next_nine(now, "America/New_York")
    tokyo = person(env, timezone="Asia/Tokyo", birth_date=born(tokyo_at, "Asia/Tokyo"))
    york = person(env, timezone="America/New_York", birth_date=born(york_at, "America/New_York"))
    yesterday = person(env, timezone="Asia/Tokyo",
                       birth_date=born(tokyo_at - timedelta(days=1), "Asia/Tokyo"))
    first, second = sorted([(tokyo_at, tokyo), (york_at, york)])
    tick(env, first[0] - timedelta(minutes=1))
    assert entered(env, workflow_id) == []
    tick(env, first[0] + timedelta(minutes=1))
    assert [sid for sid, _ in entered(env, workflow_id)] == [first[1]]
    tick(env, second[0] + timedelta(seconds=30))
    tick(env, second[0] + timedelta(minutes=2))            # looked at twice: still once each
    found = entered(env, workflow_id)
    assert [sid for sid, _ in found] == [first[1], second[1]]
    assert found[0][1]["field"] == "birth_date" and yesterday not in [sid for sid, _ in found]


def test_a_one_off_date_field_fires_its_offset_before_and_never_for_a_past_date(env):
    key = f"renewal_{uid()}"
    with db.write(env.engine) as conn:
        field_service.create_field(conn, ACTOR, key, "Renewal", "date")
    workflow_id = published(env, chain(("g", "goal", {"name": "renew"}), trigger={
        "type": "date_field", "field": f"custom.{key}", "offset_days": -3, "time": "10:30"},
        timezone="Europe/Moscow"))
    now = utcnow()
    moscow = ZoneInfo("Europe/Moscow")
    local = now.astimezone(moscow)
    due_day = local.date() + timedelta(days=1)          # its 10:30 is 3 days before renewal
    due = person(env, custom={key: (due_day + timedelta(days=3)).isoformat()})
    past = person(env, custom={key: (local.date() - timedelta(days=30)).isoformat()})
    moment = datetime.combine(due_day, time(10, 30), tzinfo=moscow)
    tick(env, moment - timedelta(minutes=1))
    assert entered(env, workflow_id) == []
    tick(env, moment + timedelta(minutes=1))
    assert [sid for sid, _ in entered(env, workflow_id)] == [due]
    assert past not in [sid for sid, _ in entered(env, workflow_id)]


def test_a_schedule_enrolls_its_segment_at_each_occurrence(env):
    city = f"Sched-{uid()}"
    with db.write(env.engine) as conn:
        segment_id = segments.create_segment(conn, ACTOR, f"s-{uid()}", {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": city}]})
    inside, also, outside = person(env, city=city), person(env, city=city), person(env, city="No")
    now = utcnow().replace(second=0, microsecond=0)
    at = now + timedelta(minutes=30)
    workflow_id = published(env, chain(("f", "update_fields", {"fields": {"company": "weekly"}}),
                                       trigger={"type": "schedule", "time": at.strftime("%H:%M"),
                                                "segment_id": segment_id},
                                       entry={"reentry": "every_time"}))
    tick(env, at - timedelta(minutes=1))
    assert entered(env, workflow_id) == []
    tick(env, at + timedelta(minutes=1))
    tick(env, at + timedelta(minutes=2))
    assert sorted(sid for sid, _ in entered(env, workflow_id)) == sorted([inside, also])
    run_later(env, 1)                   # the runner at that time takes their first step
    assert fields_of(env, inside)["company"] == "weekly" and fields_of(env, outside)["company"] is None
    tick(env, at + timedelta(days=1, minutes=1))             # the next day's occurrence
    assert len(entered(env, workflow_id)) == 4


def test_not_opened_and_not_clicked_within_count_human_events_only(env, module_smtp_sink):
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, "News", subject="News",
                                                html='<p>Hi <a href="https://example.com/a">a</a></p>')
    sender = published(env, chain(("mail", "send_email", {"message_id": message_id,
                                                           "from_email": "news@example.com"})))
    with db.read(env.engine) as conn:
        from altkraft_onprem.automation import workflows
        campaign_id = workflows.get_version(conn, workflows.get(conn, sender)["version_id"])[
            "campaigns"]["mail"]
    unopened = published(env, chain(("g", "goal", {"name": "nudge"}), trigger={
        "type": "not_opened", "campaign_id": campaign_id, "within": "PT2H"}))
    unclicked = published(env, chain(("g", "goal", {"name": "nudge"}), trigger={
        "type": "not_clicked", "campaign_id": campaign_id, "within": "PT2H"}))
    reader, scanned, idle = person(env), person(env), person(env)
    enroll(env, sender, reader, scanned, idle)
    assert len([m for m in module_smtp_sink.messages if m["Subject"] == "News"]) >= 3
    record_events(env, [
        {"at": utcnow(), "kind": "open", "campaign_id": campaign_id, "subscriber_id": reader,
         "version_id": 1},
        {"at": utcnow(), "kind": "open", "campaign_id": campaign_id, "subscriber_id": scanned,
         "version_id": 1, "machine": True, "reason": "proxy"},
        {"at": utcnow(), "kind": "click", "campaign_id": campaign_id, "subscriber_id": scanned,
         "version_id": 1, "link_index": 0, "machine": True, "reason": "scanner"}])
    tick(env, utcnow() + timedelta(hours=1))
    assert entered(env, unopened) == [] and entered(env, unclicked) == []
    tick(env, utcnow() + timedelta(hours=2, minutes=1))
    assert sorted(sid for sid, _ in entered(env, unopened)) == sorted([scanned, idle])
    assert sorted(sid for sid, _ in entered(env, unclicked)) == sorted([reader, scanned, idle])
    assert entered(env, unopened)[0][1]["campaign_id"] == campaign_id


def test_a_clock_trigger_on_a_field_that_is_not_a_date_is_refused_at_publish(env):
    from altkraft_onprem.automation import workflows
    from altkraft_onprem.errors import ServiceError

    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(("g", "goal", {"name": "x"}), trigger={
            "type": "date_field", "field": "city"}))
    with pytest.raises(ServiceError) as caught, db.write(env.engine) as conn:
        workflows.publish(conn, ACTOR, workflow_id)
    assert "trigger date_field" in caught.value.message and "not a date" in caught.value.message


def test_birthday_of_29_february_is_the_28th_in_other_years():
    trigger = {"field": "birth_date", "offset_days": 0}
    days = list(scheduled._occurrences(date(1992, 2, 29), trigger, range(2027, 2029)))
    assert days == [date(2027, 2, 28), date(2028, 2, 29)]
