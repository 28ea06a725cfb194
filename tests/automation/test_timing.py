"""Wait arithmetic across DST gaps and folds (hypothesis), and the documented examples."""
from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from altkraft_onprem.automation import timing

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Europe/Moscow",
         "America/Santiago", "Asia/Kolkata", "UTC", "Pacific/Chatham"]
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
                       timezones=st.just(UTC))
zones = st.sampled_from(ZONES).map(zoneinfo.ZoneInfo)
clocks = st.times().map(lambda t: t.replace(second=0, microsecond=0))


def exists(wall: datetime, tz) -> bool:
    return timing.local_to_utc(wall, tz).astimezone(tz).replace(tzinfo=None) == wall


@settings(max_examples=400, deadline=None)
@given(moments, zones, st.integers(0, 400), st.integers(0, 48 * 60))
def test_a_duration_never_ends_before_its_start(start, tz, days, minutes):
    end = timing.after_duration(start, timedelta(days=days, minutes=minutes), tz)
    assert end >= start


@settings(max_examples=400, deadline=None)
@given(moments, zones, st.integers(1, 400))
def test_whole_days_keep_the_local_time_of_day(start, tz, days):
    end = timing.after_duration(start, timedelta(days=days), tz)
    before = start.astimezone(tz)
    wall = before.replace(tzinfo=None) + timedelta(days=days)
    if exists(wall, tz):
        assert end.astimezone(tz).replace(tzinfo=None) == wall
    else:                                   # in a gap: after it, by the gap's length
        assert end.astimezone(tz).replace(tzinfo=None) > wall


@settings(max_examples=400, deadline=None)
@given(moments, zones, st.lists(st.integers(1, 7), min_size=1, max_size=7), clocks)
def test_the_next_weekday_time_is_soon_and_on_a_chosen_day(now, tz, weekdays, at):
    found = timing.next_weekday_time(now, weekdays, at, tz)
    assert now <= found <= now + timedelta(days=8, hours=3)
    local = found.astimezone(tz)
    assert local.isoweekday() in weekdays
    wall = datetime.combine(local.date(), at)
    if exists(wall, tz):
        assert local.replace(tzinfo=None) == wall
        # a fold: the first of the two moments
        assert found == wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


@settings(max_examples=300, deadline=None)
@given(moments, zones, clocks, clocks, st.lists(st.integers(1, 7), min_size=1, max_size=7))
def test_a_send_window_opens_at_or_after_now_and_inside_the_window(now, tz, start, end, weekdays):
    found = timing.next_window_start(now, start, end, weekdays, tz)
    assert found >= now
    if found == now:
        assert timing.in_window(now, start, end, weekdays, tz) or \
            timing.local_to_utc(datetime.combine(now.astimezone(tz).date(), start), tz) == now


@settings(max_examples=300, deadline=None)
@given(st.dates(min_value=date(1930, 1, 1), max_value=date(2010, 12, 31)), st.integers(-3, 3),
       moments, zones)
def test_an_anniversary_is_within_a_year_and_on_the_day(born, offset, now, tz):
    found = timing.next_anniversary(born, offset, time(9, 0), tz, now)
    assert now <= found <= now + timedelta(days=367)
    local = (found.astimezone(tz) - timedelta(days=offset)).date()
    if (born.month, born.day) == (2, 29):
        assert (local.month, local.day) in ((2, 29), (2, 28))
    else:
        assert (local.month, local.day) == (born.month, born.day)


def test_a_day_across_the_spring_gap_is_23_hours_in_berlin():
    tz = zoneinfo.ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 28, 9, 0, tzinfo=tz).astimezone(UTC)
    end = timing.after_duration(start, timedelta(days=1), tz)
    assert end - start == timedelta(hours=23)
    assert end.astimezone(tz).hour == 9


def test_a_time_in_the_gap_moves_after_it_and_a_fold_takes_the_first():
    tz = zoneinfo.ZoneInfo("Europe/Berlin")
    gap = timing.local_to_utc(datetime(2026, 3, 29, 2, 30), tz)
    assert gap.astimezone(tz).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 30)
    fold = timing.local_to_utc(datetime(2026, 10, 25, 2, 30), tz)
    assert fold == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)       # 02:30 CEST, not CET


def test_moscow_has_no_dst_and_waits_are_exact():
    tz = zoneinfo.ZoneInfo("Europe/Moscow")
    start = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    assert timing.after_duration(start, timedelta(days=3), tz) == datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
