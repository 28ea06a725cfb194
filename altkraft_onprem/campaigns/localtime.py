"""Local-time delivery: one wall time ("10:00") in each recipient's own time zone.

A recipient's zone is their `timezone` field, else the usual zone of their `country`, else
the campaign's `fallback_timezone` (its own zone when none is given). When the ledger is
built, each recipient's row gets the zone's index (`campaign_deliveries.zone`, into the
campaign's `local_zones`) and becomes due (`next_attempt_at`) at the first such wall time at
or after the start — or at once when it passed less than GRACE ago. Rows are inserted in
order of that moment, so the senders' claims (by id) meet the rows due now first and never
walk past rows of zones still to come.

Quiet hours (21:00–08:00 unless the campaign says otherwise, or none) are local too: nothing
is handed to the relay while a zone is in them — a retry, a send resumed after a pause,
rows a warm-up released late or a send slower than the day. The senders' claims leave those
zones' rows alone (`quiet_zones`) and the send run moves them to the end of the quiet hours
(`defer_quiet`), so it waits instead of asking again.
"""
from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from babel.core import get_global
from sqlalchemy import Connection, case, func, literal, select, update

from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.audience.rules import countries
from altkraft_onprem.db.types import UTCDateTime
from altkraft_onprem.errors import ServiceError

from .models import campaigns, deliveries

DEFAULT_QUIET_HOURS = {"start": "21:00", "end": "08:00"}
# A start a little after the hour still reaches that zone today rather than tomorrow.
GRACE = timedelta(hours=1)
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\Z")


def _clock(value, field: str) -> str:
    if not isinstance(value, str) or not _CLOCK.match(value.strip()):
        raise ServiceError("use a time of day as HH:MM, e.g. 10:00", field)
    hours, minutes = value.strip().split(":")
    return f"{int(hours):02d}:{minutes}"


def _parse(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def valid_zone(name) -> bool:
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def clean(value: Any) -> dict | None:
    """The stored form of `send_at_local` ({time, fallback_timezone, quiet_hours}); None
    turns local-time delivery off. ServiceError names the field at fault."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ServiceError("give time, and optionally fallback_timezone and quiet_hours",
                           "send_at_local")
    unknown = sorted(set(value) - {"time", "fallback_timezone", "quiet_hours"})
    if unknown:
        raise ServiceError("unknown key %(key)s", "send_at_local", key=unknown[0])
    if not value.get("time"):
        raise ServiceError("is required", "send_at_local.time")
    at = _clock(value["time"], "send_at_local.time")
    fallback = value.get("fallback_timezone") or None
    if fallback is not None and not valid_zone(fallback):
        raise ServiceError("unknown time zone %(tz)s", "send_at_local.fallback_timezone",
                           tz=repr(fallback))
    quiet = value.get("quiet_hours", DEFAULT_QUIET_HOURS)
    if quiet is not None:
        if not isinstance(quiet, dict) or not {"start", "end"} <= set(quiet):
            raise ServiceError("give start and end, e.g. 21:00 and 08:00",
                               "send_at_local.quiet_hours")
        quiet = {"start": _clock(quiet["start"], "send_at_local.quiet_hours.start"),
                 "end": _clock(quiet["end"], "send_at_local.quiet_hours.end")}
        if quiet["start"] == quiet["end"]:
            quiet = None                        # an empty window: no quiet hours
        elif in_quiet(_parse(at), quiet):
            raise ServiceError("%(time)s is within the quiet hours (%(start)s–%(end)s)",
                               "send_at_local.time", time=at, start=quiet["start"], end=quiet["end"])
    return {"time": at, "fallback_timezone": fallback, "quiet_hours": quiet}


def in_quiet(local: time, quiet: dict | None) -> bool:
    """Whether a local wall time is inside the quiet hours [start, end) (across midnight when
    start > end)."""
    if not quiet:
        return False
    return _inside(local.replace(tzinfo=None), _parse(quiet["start"]), _parse(quiet["end"]))


def _inside(local: time, start: time, end: time) -> bool:
    if start < end:
        return start <= local < end
    return local >= start or local < end


@lru_cache(maxsize=1024)
def zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


# Countries with several zones: the one most of their people live in (CLDR lists a
# country's zones alphabetically, which would put the US in America/Adak).
MOST_POPULOUS_ZONE = {
    "AR": "America/Argentina/Buenos_Aires", "AU": "Australia/Sydney", "BR": "America/Sao_Paulo",
    "CA": "America/Toronto", "CD": "Africa/Kinshasa", "CL": "America/Santiago",
    "CN": "Asia/Shanghai", "CY": "Asia/Nicosia", "DE": "Europe/Berlin", "EC": "America/Guayaquil",
    "ES": "Europe/Madrid", "FM": "Pacific/Chuuk", "GL": "America/Nuuk", "ID": "Asia/Jakarta",
    "KI": "Pacific/Tarawa", "KZ": "Asia/Almaty", "MH": "Pacific/Majuro", "MN": "Asia/Ulaanbaatar",
    "MX": "America/Mexico_City", "MY": "Asia/Kuala_Lumpur", "NZ": "Pacific/Auckland",
    "PF": "Pacific/Tahiti", "PG": "Pacific/Port_Moresby", "PS": "Asia/Gaza", "PT": "Europe/Lisbon",
    "RU": "Europe/Moscow", "UA": "Europe/Kyiv", "US": "America/New_York", "UZ": "Asia/Tashkent",
}


@lru_cache(maxsize=1)
def _country_zones() -> dict[str, str]:
    """ISO country code -> its zone: CLDR's (one for most countries), the most populous of a
    country with several."""
    found = {}
    known = countries()
    for code, names in get_global("territory_zones").items():
        code = code.upper()
        if code not in known:
            continue
        for name in [MOST_POPULOUS_ZONE.get(code), *names]:
            if valid_zone(name):
                found[code] = name
                break
    return found


def country_zone(code) -> str | None:
    return _country_zones().get(code.upper()) if isinstance(code, str) and code else None


def recipient_zone(timezone, country, fallback: str) -> str:
    """The zone a recipient gets a local-time campaign in."""
    if valid_zone(timezone):
        return timezone
    return country_zone(country) or fallback


def local_moment(now: datetime, at: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The first `at` wall time in `tz` at or after `now` - GRACE, in UTC. A wall time the
    clocks skip is the moment after the gap; one they pass twice, the first (as workflows'
    waits)."""
    day = (now - GRACE).astimezone(tz).date()
    for offset in range(3):
        moment = datetime.combine(day + timedelta(days=offset), at).replace(
            tzinfo=tz, fold=0).astimezone(UTC)
        if moment >= now - GRACE:
            return moment
    raise AssertionError("a wall time recurs every day")


def quiet_end(now: datetime, tz: zoneinfo.ZoneInfo, quiet: dict) -> datetime:
    """When the quiet hours a zone is in now end (UTC)."""
    local = now.astimezone(tz)
    end = _parse(quiet["end"])
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end).replace(tzinfo=tz, fold=0).astimezone(UTC)


def fallback_zone(campaign: dict) -> str:
    config = campaign.get("send_at_local") or {}
    return config.get("fallback_timezone") or campaign.get("timezone") or "UTC"


# --- building the ledger ------------------------------------------------------------------

def plan(conn: Connection, audience, campaign: dict, now: datetime):
    """(zones in order of their moment, the SQL expression of each audience row's zone
    index, {zone index: due moment}) for a local-time campaign's ledger. `audience` is the
    campaign's SELECT of subscribers.id."""
    config = campaign["send_at_local"]
    at = _parse(config["time"])
    fallback = fallback_zone(campaign)
    pairs = conn.execute(audience.with_only_columns(
        subscribers.c.timezone, subscribers.c.country).distinct()).all()
    by_timezone: dict[str, str] = {}
    by_country: dict[str, str] = {}
    names = {fallback}
    for timezone, country in pairs:
        name = recipient_zone(timezone, country, fallback)
        names.add(name)
        if valid_zone(timezone):
            by_timezone[timezone] = name
        elif country and country_zone(country):
            by_country[country] = name
    due = {name: local_moment(now, at, zone(name)) for name in names}
    zones = sorted(names, key=lambda name: (due[name], name))
    index = {name: i for i, name in enumerate(zones)}
    whens = []
    for source, column in ((by_timezone, subscribers.c.timezone), (by_country, subscribers.c.country)):
        grouped: dict[int, list[str]] = {}
        for value, name in source.items():
            grouped.setdefault(index[name], []).append(value)
        whens += [(column.in_(sorted(values)), i) for i, values in sorted(grouped.items())]
    expression = case(*whens, else_=index[fallback]) if whens else literal(index[fallback])
    return zones, expression, {index[name]: due[name] for name in zones}


def due_expression(zone_column, dues: dict[int, datetime]):
    """CASE zone WHEN i THEN moment … for the rows' next_attempt_at."""
    kind = UTCDateTime()
    return case({i: literal(moment, kind) for i, moment in dues.items()}, value=zone_column,
                else_=literal(None, kind))


def store_zones(conn: Connection, campaign_id: int, zones: list[str]) -> None:
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(local_zones=zones))


# --- while sending ------------------------------------------------------------------------

def quiet_zones(campaign: dict, now: datetime) -> list[int]:
    """Indexes of the campaign's zones that are in their quiet hours now."""
    config = campaign.get("send_at_local") or {}
    quiet = config.get("quiet_hours")
    if not quiet:
        return []
    start, end = _parse(quiet["start"]), _parse(quiet["end"])   # once: this runs per claim
    return [i for i, name in enumerate(campaign.get("local_zones") or [])
            if _inside(now.astimezone(zone(name)).time(), start, end)]


def defer_quiet(conn: Connection, campaign: dict, now: datetime) -> int:
    """Queued rows of zones in their quiet hours become due when those hours end."""
    quiet = (campaign.get("send_at_local") or {}).get("quiet_hours")
    moved = 0
    for i in quiet_zones(campaign, now):
        until = quiet_end(now, zone(campaign["local_zones"][i]), quiet)
        moved += conn.execute(update(deliveries).where(
            deliveries.c.campaign_id == campaign["id"], deliveries.c.state == "queued",
            deliveries.c.zone == i,
            (deliveries.c.next_attempt_at.is_(None)) | (deliveries.c.next_attempt_at < until),
        ).values(next_attempt_at=until)).rowcount
    return moved


def zones_to_come(conn: Connection, campaign: dict, now: datetime) -> list[dict]:
    """[{zone, due_at, recipients}] of the zones whose rows are not due yet, soonest first."""
    if not campaign.get("send_at_local") or not campaign.get("local_zones"):
        return []
    d = deliveries.c
    rows = conn.execute(select(d.zone, func.min(d.next_attempt_at), func.count()).where(
        d.campaign_id == campaign["id"], d.state == "queued", d.next_attempt_at > now)
        .group_by(d.zone)).all()
    names = campaign["local_zones"]
    found = []
    for index, due, count in rows:
        if isinstance(due, str):            # SQLite hands back MIN() of a timestamp as text
            due = datetime.fromisoformat(due)
        if due is not None and due.tzinfo is None:
            due = due.replace(tzinfo=UTC)
        name = names[index] if index is not None and 0 <= index < len(names) else ""
        found.append({"zone": name, "due_at": due, "recipients": count})
    return sorted(found, key=lambda item: (item["due_at"], item["zone"]))
