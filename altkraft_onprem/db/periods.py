"""Time buckets that both databases compute the same way: every bucket is a text label.

    hour  'YYYY-MM-DD HH:00'    day  'YYYY-MM-DD'
    week  'YYYY-MM-DD' (the Monday)    month  'YYYY-MM-01'

Timestamps are stored in UTC (db.types.UTCDateTime); buckets are UTC too.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Date, Integer, cast, func, literal_column
from sqlalchemy.sql import ColumnElement

UNITS = ("hour", "day", "week", "month")


def bucket(column, unit: str, dialect: str) -> ColumnElement:
    if unit not in UNITS:
        raise ValueError(f"unknown period {unit!r}")
    if dialect == "sqlite":
        if unit == "hour":
            return func.strftime("%Y-%m-%d %H:00", column)
        if unit == "day":
            return func.strftime("%Y-%m-%d", column)
        if unit == "week":
            return func.date(column, "weekday 0", "-6 days")
        return func.strftime("%Y-%m-01", column)
    utc = func.timezone(literal_column("'UTC'"), column)
    fmt = "YYYY-MM-DD HH24:00" if unit == "hour" else "YYYY-MM-DD"
    return func.to_char(func.date_trunc(unit, utc), fmt)


def offset(start, other, unit: str, dialect: str) -> ColumnElement:
    """SQL: how many weeks or months label `other` comes after label `start` (as `index`)."""
    if unit == "month":
        def months(label):
            return cast(func.substr(label, 1, 4), Integer) * 12 + cast(func.substr(label, 6, 2), Integer)
        return months(other) - months(start)
    if unit != "week":
        raise ValueError(f"offsets are computed for weeks and months, not {unit!r}")
    if dialect == "sqlite":
        return cast(func.julianday(other) - func.julianday(start), Integer) // 7
    return cast(cast(other, Date) - cast(start, Date), Integer) // 7


def label(moment: datetime | date, unit: str) -> str:
    """The bucket label of a Python datetime/date, as the database computes it."""
    day = moment.date() if isinstance(moment, datetime) else moment
    if unit == "hour":
        return moment.strftime("%Y-%m-%d %H:00")
    if unit == "day":
        return day.isoformat()
    if unit == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return day.replace(day=1).isoformat()


def parse(text: str, unit: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d")


def step(moment: datetime, unit: str, count: int = 1) -> datetime:
    if unit == "hour":
        return moment + timedelta(hours=count)
    if unit == "day":
        return moment + timedelta(days=count)
    if unit == "week":
        return moment + timedelta(weeks=count)
    months = moment.year * 12 + moment.month - 1 + count
    return moment.replace(year=months // 12, month=months % 12 + 1, day=1)


def index(start: str, other: str, unit: str) -> int:
    """How many periods `other` comes after `start` (both bucket labels, which the database or
    `label` made). Runs per new person and period in every event flush: fromisoformat reads a
    label ~35x faster than `parse`'s strptime (which stays the check for labels from outside)."""
    a, b = datetime.fromisoformat(start), datetime.fromisoformat(other)
    if unit == "month":
        return (b.year - a.year) * 12 + b.month - a.month
    if unit == "week":
        return (b - a).days // 7
    if unit == "day":
        return (b - a).days
    return int((b - a).total_seconds() // 3600)


def series(first: str, last: str, unit: str, limit: int = 2000) -> list[str]:
    """Every label from first to last inclusive (gaps filled), at most `limit`."""
    out, current, end = [], parse(first, unit), parse(last, unit)
    while current <= end and len(out) < limit:
        out.append(label(current, unit))
        current = step(current, unit)
    return out
