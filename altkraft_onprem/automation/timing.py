"""Wait arithmetic in a person's time zone. Every result is an absolute UTC time.

Rules, the same for every wait node:
- A duration's days (and weeks) are calendar days in the person's zone: "P1D" from 09:00 is
  09:00 the next day, also across a DST change (23 or 25 hours). Its hours, minutes and
  seconds are elapsed time.
- A wall time that does not exist (the hour skipped when clocks go forward) means the first
  moment after the gap, shifted by the gap: 02:30 in a 02:00-03:00 gap is 03:30.
- A wall time that happens twice (clocks go back) means the first of the two.
- A target in the past means "now": a wait never wakes before it was entered.
"""
from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, time, timedelta

from pydantic import TypeAdapter

_DURATION = TypeAdapter(timedelta)


def duration(text: str) -> timedelta:
    """An ISO 8601 duration as stored in a version ("PT2H", "P3D")."""
    return _DURATION.validate_python(text)


def zone(name: str | None, fallback: str = "UTC") -> zoneinfo.ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return zoneinfo.ZoneInfo(candidate)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


def local_to_utc(wall: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """A naive wall time in `tz` as UTC, by the rules above. zoneinfo's fold=0 gives both:
    in a gap it applies the offset from before the change (02:30 lands at 03:30, after the
    gap), in a fold the first of the two offsets."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def after_duration(start: datetime, duration: timedelta, tz: zoneinfo.ZoneInfo) -> datetime:
    """`start` (UTC) plus a duration: days in local calendar days, the rest elapsed."""
    days = duration.days
    rest = duration - timedelta(days=days)
    moment = start
    if days:
        wall = start.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
        moment = local_to_utc(wall, tz)
    return moment + rest


def next_weekday_time(now: datetime, weekdays: list[int], at: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first moment at or after `now` that is `at` local time on one of the ISO weekdays."""
    local_day = now.astimezone(tz).date()
    for offset in range(0, 8):
        day = local_day + timedelta(days=offset)
        if day.isoweekday() not in weekdays:
            continue
        moment = local_to_utc(datetime.combine(day, at), tz)
        if moment >= now:
            return moment
    raise ValueError("no weekday given")


def on_date(day: date, offset_days: int, at: time, tz: zoneinfo.ZoneInfo, now: datetime) -> datetime:
    """`at` local time on `day` + offset (now when that is past)."""
    moment = local_to_utc(datetime.combine(day + timedelta(days=offset_days), at), tz)
    return max(moment, now)


def next_anniversary(day: date, offset_days: int, at: time, tz: zoneinfo.ZoneInfo,
                     now: datetime) -> datetime:
    """The next yearly recurrence of `day` (month and day; 29 February is the 28th in other
    years) + offset at `at` local time, at or after now (birthdays)."""
    year = now.astimezone(tz).year - 1
    for candidate_year in range(year, year + 3):
        try:
            this = day.replace(year=candidate_year)
        except ValueError:
            this = date(candidate_year, 2, 28)
        moment = local_to_utc(datetime.combine(this + timedelta(days=offset_days), at), tz)
        if moment >= now:
            return moment
    raise ValueError("no anniversary found")


def in_window(now: datetime, start: time, end: time, weekdays: list[int], tz: zoneinfo.ZoneInfo) -> bool:
    local = now.astimezone(tz)
    if local.isoweekday() not in weekdays:
        return False
    current = local.time().replace(tzinfo=None)
    if start <= end:
        return start <= current < end
    return current >= start or current < end         # a window across midnight


def next_window_start(now: datetime, start: time, end: time, weekdays: list[int],
                      tz: zoneinfo.ZoneInfo) -> datetime:
    """Now when inside the send window, else when it next opens."""
    if in_window(now, start, end, weekdays, tz):
        return now
    return next_weekday_time(now, weekdays, start, tz)
