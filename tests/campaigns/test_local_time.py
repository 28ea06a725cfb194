"""Local-time delivery: a campaign sent at one wall time in each subscriber's zone (their
timezone field, else their country's, else the fallback), through the ledger — rows due per
zone, quiet hours kept — against a real SMTP sink."""
from __future__ import annotations

import zoneinfo
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.campaigns import ledger, localtime
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from tests.campaigns.helpers import (
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
    start,
)

_lists = iter(range(1000))


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def offset_zone(hours: int) -> str:
    """A fixed-offset IANA zone UTC+hours (POSIX sign: Etc/GMT-3 is UTC+3)."""
    return "Etc/UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"


def world(env, sink, people: list[dict], send_at_local: dict, **extra):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    n = next(_lists)
    list_id, ids = make_list(env, f"Local {n}", [{"email": f"l{n}-{i}@example.org", **p}
                                                 for i, p in enumerate(people)])
    campaign_id = make_campaign(env, make_message(env), [list_id], send_at_local=send_at_local,
                                **extra)
    return settings, campaign_id, ids


def rows(env, campaign_id: int) -> list:
    with db.read(env.engine) as conn:
        return conn.execute(select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.zone,
                                   deliveries.c.next_attempt_at, deliveries.c.state).where(
            deliveries.c.campaign_id == campaign_id).order_by(deliveries.c.id)).all()


# --- the rules ------------------------------------------------------------------------------

def test_a_subscribers_zone_is_their_field_then_their_country_then_the_fallback():
    assert localtime.recipient_zone("Asia/Tokyo", "DE", "UTC") == "Asia/Tokyo"
    assert localtime.recipient_zone(None, "DE", "UTC") == "Europe/Berlin"
    assert localtime.recipient_zone("Mars/Olympus", "de", "UTC") == "Europe/Berlin"
    assert localtime.recipient_zone(None, "ZZ", "America/Chicago") == "America/Chicago"
    assert localtime.recipient_zone("", None, "Europe/Riga") == "Europe/Riga"


def test_the_moment_is_the_next_wall_time_or_now_within_the_grace():
    tz = zoneinfo.ZoneInfo("Europe/Berlin")
    now = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)              # 10:30 in Berlin
    assert localtime.local_moment(now, time(10, 0), tz) == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    assert localtime.local_moment(now, time(9, 0), tz) == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
    assert localtime.local_moment(now, time(12, 0), tz) == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)


def test_a_wall_time_the_clocks_skip_is_the_moment_after_the_gap():
    tz = zoneinfo.ZoneInfo("Europe/Berlin")                    # 29 March 2026: 02:00 -> 03:00
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert localtime.local_moment(now, time(2, 30), tz) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_quiet_hours_across_midnight():
    quiet = {"start": "21:00", "end": "08:00"}
    assert localtime.in_quiet(time(22, 15), quiet) and localtime.in_quiet(time(7, 59), quiet)
    assert not localtime.in_quiet(time(8, 0), quiet) and not localtime.in_quiet(time(20, 59), quiet)
    assert localtime.in_quiet(time(13, 0), {"start": "12:00", "end": "14:00"})
    tz = zoneinfo.ZoneInfo("Europe/Berlin")
    assert localtime.quiet_end(datetime(2026, 1, 5, 22, 0, tzinfo=UTC), tz, quiet) == \
        datetime(2026, 1, 6, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(("value", "field"), [
    ({"time": "25:00"}, "send_at_local.time"),
    ({"time": "10"}, "send_at_local.time"),
    ({}, "send_at_local.time"),
    ({"time": "10:00", "fallback_timezone": "Mars/Base"}, "send_at_local.fallback_timezone"),
    ({"time": "10:00", "quiet_hours": {"start": "9"}}, "send_at_local.quiet_hours"),
    ({"time": "10:00", "quiet_hours": {"start": "09:00", "end": "7:6"}}, "send_at_local.quiet_hours.end"),
    ({"time": "22:30"}, "send_at_local.time"),                  # in the default quiet hours
    ({"time": "10:00", "when": "now"}, "send_at_local"),
    ("10:00", "send_at_local"),
])
def test_bad_local_time_is_refused_naming_the_field(value, field):
    with pytest.raises(ServiceError) as caught:
        localtime.clean(value)
    assert caught.value.field == field


def test_defaults_are_filled_in():
    assert localtime.clean({"time": "9:05"}) == {
        "time": "09:05", "fallback_timezone": None, "quiet_hours": {"start": "21:00", "end": "08:00"}}
    assert localtime.clean({"time": "23:00", "quiet_hours": None})["quiet_hours"] is None


def test_local_time_and_a_split_test_do_not_go_together(env):
    n = next(_lists)
    list_id, _ = make_list(env, f"Local split {n}", [{"email": f"ls{n}@example.org"}])
    with pytest.raises(ServiceError) as caught:
        make_campaign(env, make_message(env), [list_id], send_at_local={"time": "10:00"},
                      split_test={"variants": [{"subject": "A"}, {"subject": "B"}]})
    assert caught.value.field == "send_at_local"


# --- sending --------------------------------------------------------------------------------

def test_rows_become_due_per_zone_and_only_due_zones_are_sent(env, sink):
    now = utcnow()
    people = ([{"timezone": offset_zone(0)}] * 3 +            # due now (within the hour)
              [{"timezone": offset_zone(-5)}] * 2 +           # 5 hours from now
              [{"country": "JP"}] * 2 +                       # Tokyo: tomorrow, 15 hours on
              [{}] * 2)                                       # the fallback: UTC, now
    settings, campaign_id, ids = world(env, sink, people, {"time": hhmm(now), "quiet_hours": None,
                                                           "fallback_timezone": "UTC"})
    before = len(sink.messages)
    start(env, settings, campaign_id)
    found = rows(env, campaign_id)
    with db.read(env.engine) as conn:
        campaign = campaigns.get_campaign(conn, campaign_id)
    zone_of = {r.subscriber_id: campaign["local_zones"][r.zone] for r in found}
    assert [zone_of[i] for i in ids] == ["Etc/UTC"] * 3 + ["Etc/GMT+5"] * 2 + \
        ["Asia/Tokyo"] * 2 + ["UTC"] * 2
    # inserted in the order they become due: a claim by id meets the due rows first
    dues = [r.next_attempt_at for r in found]
    assert dues == sorted(dues)
    minute = now.replace(second=0, microsecond=0)
    assert {zone_of[r.subscriber_id]: r.next_attempt_at for r in found} == {
        "Etc/UTC": minute, "UTC": minute, "Etc/GMT+5": minute + timedelta(hours=5),
        "Asia/Tokyo": minute + timedelta(hours=15)}

    run_campaign(settings, env.engine, campaign_id, processes=1)
    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["remaining"]) == ("running", 5, 4)
    assert len(sink.messages) - before == 5
    assert [(z["zone"], z["recipients"]) for z in state["zones_to_come"]] == [
        ("Etc/GMT+5", 2), ("Asia/Tokyo", 2)]
    assert state["zones_to_come"][0]["due_at"] == minute + timedelta(hours=5)

    # The hours pass (the rows are made due now): the rest goes, each message once.
    with db.write(env.engine) as conn:
        conn.execute(update(deliveries).where(deliveries.c.campaign_id == campaign_id,
                                              deliveries.c.state == "queued")
                     .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    run_campaign(settings, env.engine, campaign_id, processes=2)
    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["zones_to_come"]) == ("finished", 9, [])
    assert sorted(Counter(sink.recipients()[before:]).values()) == [1] * 9


def _zones_at(now: datetime, local_hour: int) -> str:
    """A fixed-offset zone whose local time is `local_hour`:xx at `now` (UTC-9 to UTC+14)."""
    hours = (local_hour - now.hour) % 24
    return offset_zone(hours - 24 if hours > 14 else hours)


def test_quiet_hours_hold_a_zone_until_they_end(env, sink):
    """Whatever the hour of the day: the zones are chosen from it — one at 02:xx, inside the
    quiet hours 01:00–06:00, one at 12:xx, six hours from either end of them (also the
    fallback zone, which a campaign always has)."""
    now = utcnow()
    quiet_zone, open_zone = _zones_at(now, 2), _zones_at(now, 12)
    quiet = {"start": "01:00", "end": "06:00"}
    settings, campaign_id, _ = world(env, sink, [{"timezone": open_zone}] * 2 + [{"timezone": quiet_zone}] * 3,
                                     {"time": hhmm(now.astimezone(zoneinfo.ZoneInfo(open_zone))),
                                      "quiet_hours": quiet, "fallback_timezone": open_zone})
    before = len(sink.messages)
    start(env, settings, campaign_id)
    # as a retry or a resumed send would be: due now, in a zone that is in its quiet hours
    with db.write(env.engine) as conn:
        conn.execute(update(deliveries).where(deliveries.c.campaign_id == campaign_id)
                     .values(next_attempt_at=None))
        campaign = campaigns.get_campaign(conn, campaign_id)
        assert localtime.quiet_zones(campaign, utcnow()) == [campaign["local_zones"].index(quiet_zone)]
    run_campaign(settings, env.engine, campaign_id, processes=1)
    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["remaining"]) == ("running", 2, 3)
    assert len(sink.messages) - before == 2
    [waiting] = state["zones_to_come"]
    local_end = waiting["due_at"].astimezone(zoneinfo.ZoneInfo(quiet_zone))
    assert (waiting["zone"], waiting["recipients"], local_end.strftime("%H:%M")) == (quiet_zone, 3, "06:00")
    assert timedelta(0) < waiting["due_at"] - utcnow() <= timedelta(hours=5)


def test_a_claim_leaves_quiet_zones_alone(env, sink):
    now = utcnow()
    settings, campaign_id, _ = world(env, sink, [{"timezone": "Etc/UTC"}, {"timezone": "Etc/GMT-1"}],
                                     {"time": hhmm(now), "quiet_hours": None})
    start(env, settings, campaign_id)
    with db.write(env.engine) as conn:
        zones = campaigns.get_campaign(conn, campaign_id)["local_zones"]
        claimed = ledger.claim(conn, campaign_id, "test:1:x", 10, 60,
                               now=utcnow() + timedelta(hours=2),
                               skip_zones=[zones.index("Etc/GMT-1")])
        assert len(claimed) == 1
        ledger.release(conn, "test:1:x")


def test_no_zones_to_come_for_an_ordinary_campaign(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    n = next(_lists)
    list_id, _ = make_list(env, f"Plain {n}", [{"email": f"p{n}@example.org", "timezone": "Asia/Tokyo"}])
    campaign_id = make_campaign(env, make_message(env), [list_id])
    start(env, settings, campaign_id)
    found = rows(env, campaign_id)
    assert [(r.zone, r.next_attempt_at) for r in found] == [(None, None)]
    run_campaign(settings, env.engine, campaign_id, processes=1)
    assert progress(env, campaign_id)["zones_to_come"] == []


# --- the API and the pages ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    token = env.token("Manager")
    client = env.app.test_client()
    list_id, _ = make_list(env, "Local API", [{"email": f"la{i}@example.org", "timezone": "Etc/GMT+11"}
                                              for i in range(3)])
    message_id = make_message(env)

    def call(method: str, path: str, json=None):
        return client.open("/api/v1" + path, method=method, json=json,
                           headers={"Authorization": f"Bearer {token}"})
    call.list_id, call.message_id, call.client = list_id, message_id, client
    return call


def body(api, **extra):
    return {"name": "Local", "message_id": api.message_id, "lists": [api.list_id],
            "from_email": "news@example.com", **extra}


def test_api_creates_and_reads_local_time(api):
    response = api("POST", "/campaigns", body(api, send_at_local={
        "time": "10:00", "fallback_timezone": "Europe/Berlin"}))
    assert response.status_code == 201, response.get_json()
    found = api("GET", f"/campaigns/{response.get_json()['id']}").get_json()
    assert found["send_at_local"] == {"time": "10:00", "fallback_timezone": "Europe/Berlin",
                                      "quiet_hours": {"start": "21:00", "end": "08:00"}}


def test_api_patch_changes_and_removes_local_time(api):
    campaign_id = api("POST", "/campaigns", body(api)).get_json()["id"]
    found = api("PATCH", f"/campaigns/{campaign_id}", {"send_at_local": {
        "time": "07:30", "quiet_hours": None}}).get_json()
    assert found["send_at_local"] == {"time": "07:30", "fallback_timezone": None, "quiet_hours": None}
    found = api("PATCH", f"/campaigns/{campaign_id}", {"send_at_local": None}).get_json()
    assert found["send_at_local"] is None


@pytest.mark.parametrize(("local", "field"), [
    ({"time": "10:00", "fallback_timezone": "Nowhere/Land"}, "send_at_local.fallback_timezone"),
    ({"time": "03:00"}, "send_at_local.time"),
])
def test_api_refuses_bad_local_time_naming_the_field(api, local, field):
    response = api("POST", "/campaigns", body(api, send_at_local=local))
    assert response.status_code == 422
    assert field in response.get_data(as_text=True)


def test_api_refuses_a_malformed_time(api):
    response = api("POST", "/campaigns", body(api, send_at_local={"time": "ten"}))
    assert response.status_code == 422
    assert "time" in response.get_data(as_text=True)


def test_started_campaign_shows_zones_still_to_come(api, env):
    now = utcnow()
    response = api("POST", "/campaigns", body(api, start_now=True, send_at_local={
        "time": hhmm(now), "quiet_hours": None}))
    campaign_id = response.get_json()["id"]
    found = api("GET", f"/campaigns/{campaign_id}").get_json()
    assert found["state"] == "running" and found["stats"]["sent"] == 0
    [zone] = found["stats"]["zones_to_come"]
    assert (zone["zone"], zone["recipients"]) == ("Etc/GMT+11", 3)
    page = _page(env, f"/campaigns/{campaign_id}")
    assert 'id="zones-to-come"' in page and "Etc/GMT+11" in page


def _page(env, path: str) -> str:
    client = env.app.test_client()
    env.login(client, env.user("Manager"))
    return client.get(path).get_data(as_text=True)
