"""Campaign operations: create, change, lifecycle (start/pause/resume/cancel), progress."""
from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from altkraft_onprem import events, extensions
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.scope import require_lists
from altkraft_onprem.access.service import record
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import lists as lists_table
from altkraft_onprem.audience.models import normalise_email, subscribers
from altkraft_onprem.audience.models import segments as segments_table
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.warmup import warmups
from altkraft_onprem.errors import Conflict, NotFound, ServiceError, Term
from altkraft_onprem.messages.render import check_version
from altkraft_onprem.messages.service import get_version, require_sendable, version_links

from . import ledger, localtime, occurrences, splittest, startcheck, transactional
from .models import MAX_UTM_LENGTH, MOVES, UTM_KEYS, campaigns, deliveries, link_marks, with_utm

EDITABLE_STATES = ("draft", "scheduled")


def _ids(value, field: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ServiceError("must be a list of ids", field)
    return sorted(set(value))


def _clean(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in data:
        name = (data["name"] or "").strip()
        if not name or len(name) > 200:
            raise ServiceError("a name of 1 to 200 characters is required", "name")
        out["name"] = name
    if "message_id" in data:
        require_sendable(conn, data["message_id"])
        out["message_id"] = data["message_id"]
    for key in ("from_email", "reply_to"):
        if key in data:
            if not data[key] and key == "reply_to":
                out[key] = None
                continue
            try:
                out[key] = normalise_email(data[key])
            except ValueError as exc:
                raise ServiceError.like(exc, key) from None
    if "from_name" in data:
        out["from_name"] = (data["from_name"] or "").strip()[:200]
    for key in ("list_ids", "segment_ids", "exclude_list_ids", "exclude_segment_ids"):
        if key in data:
            out[key] = _ids(data[key], key)
    for key, table in (("list_ids", lists_table), ("exclude_list_ids", lists_table),
                       ("segment_ids", segments_table), ("exclude_segment_ids", segments_table)):
        if out.get(key):
            known = set(conn.execute(select(table.c.id).where(table.c.id.in_(out[key]))).scalars())
            missing = [i for i in out[key] if i not in known]
            if missing and table is lists_table:
                raise NotFound("no such list: %(ids)s", key, ids=missing[0])
            if missing:
                raise NotFound("no such segment: %(ids)s", key, ids=missing[0])
    if "utm" in data:
        utm = data["utm"] or {}
        if not isinstance(utm, dict) or any(k not in UTM_KEYS for k in utm):
            raise ServiceError("UTM keys are %(utm_keys)s", "utm", utm_keys=', '.join(UTM_KEYS))
        out["utm"] = _marks(utm, "utm")
    if "link_utm" in data:
        link_utm = data["link_utm"] or {}
        if not isinstance(link_utm, dict) or not all(
                str(k).isdigit() and isinstance(v, dict) and all(x in UTM_KEYS for x in v)
                for k, v in link_utm.items()):
            raise ServiceError("per-link UTM must map link numbers to UTM marks", "link_utm")
        out["link_utm"] = {str(int(k)): marks for k, v in link_utm.items()
                           if (marks := _marks(v, f"link_utm.{int(k)}"))}
    for key in ("track_opens", "track_clicks", "archive"):
        if key in data:
            out[key] = bool(data[key])
    if "timezone" in data:
        tz = data["timezone"] or "UTC"
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ServiceError("unknown time zone %(tz)s", "timezone", tz=repr(tz)) from None
        out["timezone"] = tz
    if "send_at_local" in data:
        out["send_at_local"] = localtime.clean(data["send_at_local"])
    if "schedule_at" in data:
        out["schedule_at"] = _schedule(data["schedule_at"], out.get("timezone") or
                                       data.get("timezone") or "UTC")
    return out


def _marks(utm: dict, field: str) -> dict[str, str]:
    """UTM marks with their blank values left out (blank: inherit); each at most
    MAX_UTM_LENGTH characters, else an error on `field`.<key>."""
    marks = {k: str(v).strip() for k, v in utm.items() if str(v or "").strip()}
    for key, value in marks.items():
        if len(value) > MAX_UTM_LENGTH:
            raise ServiceError("at most %(max)s characters", f"{field}.{key}", max=MAX_UTM_LENGTH)
    return marks


def message_links(conn: Connection, message_id: int) -> list[tuple[int, str]]:
    """(link number, URL) of a message's current version: the numbers `link_utm` and the
    click tracker use (messages.service.version_links)."""
    return version_links(conn, get_version(conn, message_id)["id"])


def _link_numbers(conn: Connection, message_ids: list[int]) -> set[int]:
    return {index for message_id in dict.fromkeys(message_ids)
            for index, _ in message_links(conn, message_id)}


def _check_link_numbers(conn: Connection, link_utm: dict, message_ids: list[int]) -> None:
    """Per-link marks only for links the campaign's messages have (the campaign's message or
    a split-test variant's): an unknown link number is an error on link_utm.<number>."""
    known = _link_numbers(conn, message_ids)
    for number in sorted(link_utm, key=int):
        if int(number) not in known:
            raise ServiceError("the message has no link %(number)s", f"link_utm.{number}",
                               number=number)


def _campaign_messages(message_id: int | None, split: dict | None) -> list[int]:
    ids = [message_id] if message_id else []
    return ids + [v["message_id"] for v in (split or {}).get("variants", []) if v.get("message_id")]


def _schedule(value, tz: str) -> datetime | None:
    """A schedule given as an ISO string or datetime; naive means wall time in `tz`."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ServiceError("use an ISO date and time, e.g. 2026-12-01T09:00", "schedule_at") from None
    if not isinstance(value, datetime):
        raise ServiceError("use an ISO date and time, e.g. 2026-12-01T09:00", "schedule_at")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(tz))
    try:
        return value.astimezone(zoneinfo.ZoneInfo("UTC"))
    except OverflowError:
        raise ServiceError("a time between years 1 and 9999 in UTC", "schedule_at") from None


def create_campaign(conn: Connection, actor: Actor, **data: Any) -> int:
    """A draft; name, message_id, list_ids (or segment_ids) and from_email are required."""
    for required in ("name", "message_id", "from_email"):
        if not data.get(required):
            raise ServiceError("is required", required)
    if not data.get("list_ids"):
        raise ServiceError("pick at least one list", "list_ids")
    data.setdefault("timezone", "UTC")
    split = splittest.clean(conn, data.pop("split_test", None))
    values = _clean(conn, data)
    if values.get("link_utm"):
        _check_link_numbers(conn, values["link_utm"], _campaign_messages(values["message_id"], split))
    _keep_to_lists(actor, values)
    now = utcnow()
    defaults = {"from_name": "", "segment_ids": [], "exclude_list_ids": [], "exclude_segment_ids": [],
                "utm": {}, "link_utm": {}, "track_opens": True, "track_clicks": True,
                "archive": False, "ledger_built": False, "total": 0, "state": "draft"}
    values = {**defaults, **values}
    _refuse_local_split(values.get("send_at_local"), split)
    campaign_id = conn.execute(insert(campaigns).values(
        **values, created_at=now, updated_at=now, created_by=actor.label)).inserted_primary_key[0]
    splittest.save(conn, campaign_id, split)
    record(conn, actor, "campaign.create", "campaign", campaign_id, name=values["name"],
           split_test=split is not None)
    return campaign_id


COPIED = ("message_id", "list_ids", "segment_ids", "exclude_list_ids", "exclude_segment_ids",
          "from_email", "from_name", "reply_to", "timezone", "utm", "link_utm", "track_opens",
          "track_clicks", "archive", "send_at_local")


def duplicate_campaign(conn: Connection, actor: Actor, campaign_id: int, name: str) -> int:
    """A draft copy of any campaign (its audience, sender, tracking, UTM, local time and
    split-test variants; not its schedule, state or figures), checked like a new one."""
    source = get_campaign(conn, campaign_id)
    if source["workflow_id"] is not None or source["transactional"]:
        raise Conflict("only campaigns people create can be duplicated")
    data = {key: source[key] for key in COPIED}
    test = splittest.get(conn, campaign_id)
    if test is not None:
        data["split_test"] = {
            "variants": [{k: v.get(k) for k in ("subject", "from_name", "message_id")}
                         for v in test["variants"]],
            "test_percent": test["test_percent"], "metric": test["metric"],
            "wait_hours": test["wait_hours"]}
    # Marks of links the messages no longer have (edited since) would be refused: left out.
    known = _link_numbers(conn, _campaign_messages(data["message_id"], data.get("split_test")))
    data["link_utm"] = {k: v for k, v in (data["link_utm"] or {}).items() if int(k) in known}
    copy_id = create_campaign(conn, actor, name=name[:200], **data)
    record(conn, actor, "campaign.duplicate", "campaign", copy_id, source=campaign_id)
    return copy_id


def update_campaign(conn: Connection, actor: Actor, campaign_id: int, **data: Any) -> None:
    current = get_campaign(conn, campaign_id)
    # Publishing to the archive (or taking it down) is not a change of what is sent.
    if current["state"] not in EDITABLE_STATES and set(data) - {"archive"}:
        raise Conflict("a %(state)s campaign cannot be changed", state=Term(current["state"]))
    if "schedule_at" in data and "timezone" not in data:
        data["timezone"] = current["timezone"]
    changes_split = "split_test" in data
    split = splittest.clean(conn, data.pop("split_test", None))
    values = _clean(conn, data)
    if values.get("link_utm"):
        _check_link_numbers(conn, values["link_utm"], _campaign_messages(
            values.get("message_id", current["message_id"]),
            split if changes_split else splittest.get(conn, campaign_id)))
    if "list_ids" in values and not values["list_ids"]:
        raise ServiceError("pick at least one list", "list_ids")
    _keep_to_lists(actor, values)
    _refuse_local_split(values.get("send_at_local", current["send_at_local"]),
                        split if changes_split else splittest.get(conn, campaign_id))
    if (values.get("schedule_at", current["schedule_at"]) != current["schedule_at"]
            and late_start(current) is not None):
        values["pause_reason"] = None       # it named the schedule it missed
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                 .values(**values, updated_at=utcnow()))
    if changes_split:
        splittest.save(conn, campaign_id, split)
    record(conn, actor, "campaign.update", "campaign", campaign_id,
           fields=sorted([*values, *(["split_test"] if changes_split else [])]))


def _keep_to_lists(actor: Actor, values: dict[str, Any]) -> None:
    """A role limited to some lists sends (and excludes) only within them."""
    for field in ("list_ids", "exclude_list_ids"):
        require_lists(actor, values.get(field) or [], field)


def lists_of_campaign(conn: Connection, campaign_id: int) -> tuple[set[int], str] | None:
    """For access.scope: a campaign is seen when all its lists are (a workflow's, which has
    none, belongs to no list)."""
    row = conn.execute(select(campaigns.c.list_ids, campaigns.c.exclude_list_ids)
                       .where(campaigns.c.id == campaign_id)).first()
    if row is None:
        return None
    ids = {*(row.list_ids or []), *(row.exclude_list_ids or [])}
    return (ids or {0}), "all"


def _refuse_local_split(send_at_local, split) -> None:
    """A split test's winner is chosen at one moment for everyone; local-time delivery
    spreads the sends over a day: the two do not go together."""
    if send_at_local and split:
        raise ServiceError("local-time delivery and a split test cannot be combined; "
                           "remove one of them", "send_at_local")


def get_campaign(conn: Connection, campaign_id: int) -> dict[str, Any]:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None:
        raise NotFound("campaign %(campaign_id)s does not exist", campaign_id=campaign_id)
    return dict(row)


def list_campaigns(conn: Connection, *, only=None) -> list[dict[str, Any]]:
    """The campaigns people create (not those of workflows' send nodes or the transactional
    API's carriers); `only`: those whose lists are all among these (a role limited to some
    lists)."""
    rows = conn.execute(select(campaigns).where(campaigns.c.workflow_id.is_(None),
                                                campaigns.c.transactional.is_(False))
                        .order_by(campaigns.c.id.desc())).mappings()
    return [dict(r) for r in rows if only is None
            or {*r["list_ids"], *(r["exclude_list_ids"] or [])} <= only]


def state(conn: Connection, campaign_id: int) -> str | None:
    return conn.execute(select(campaigns.c.state).where(campaigns.c.id == campaign_id)).scalar()


def _move(conn: Connection, actor: Actor, campaign_id: int, action: str, **values) -> str:
    current = get_campaign(conn, campaign_id)
    target = MOVES[action].get(current["state"])
    if target is None:
        raise _cannot(action, Term(current["state"]))
    result = conn.execute(update(campaigns).where(
        campaigns.c.id == campaign_id, campaigns.c.state == current["state"]).values(
        state=target, updated_at=utcnow(), **values))
    if result.rowcount != 1:
        raise Conflict("the campaign changed meanwhile; reload and try again")
    record(conn, actor, f"campaign.{action}", "campaign", campaign_id, state=target)
    if target == "running" and current["state"] != "paused":
        events.CAMPAIGN_STARTED.emit(conn, campaign_id=campaign_id)
    elif target == "paused":
        events.CAMPAIGN_PAUSED.emit(conn, campaign_id=campaign_id, reason=values.get("pause_reason"))
    return target


def _cannot(action: str, state: Term) -> Conflict:
    """One whole sentence per action: verb forms differ between languages."""
    match action:
        case "schedule":
            return Conflict("a %(state)s campaign cannot be scheduled", state=state)
        case "start":
            return Conflict("a %(state)s campaign cannot be started", state=state)
        case "pause":
            return Conflict("a %(state)s campaign cannot be paused", state=state)
        case "resume":
            return Conflict("a %(state)s campaign cannot be resumed", state=state)
    return Conflict("a %(state)s campaign cannot be cancelled", state=state)


def _pin_version(conn: Connection, campaign: dict) -> int:
    version = get_version(conn, campaign["message_id"])
    problems = check_version(version)
    if problems:
        raise ServiceError("the message has template errors: %(problems)s", "message_id", problems=problems[0])
    return version["id"]


def _check_sendable(settings, campaign: dict) -> None:
    if not settings["smtp.relays"]:
        raise Conflict("no SMTP relay is configured ([[smtp.relays]])", "smtp.relays")


def start(conn: Connection, actor: Actor, settings, campaign_id: int) -> str:
    """Start now: pin the message version, build the ledger, hand the campaign to senders
    (the caller enqueues the send job after commit)."""
    campaign = get_campaign(conn, campaign_id)
    _check_sendable(settings, campaign)
    version_id = campaign["version_id"] or _pin_version(conn, campaign)
    now = utcnow()
    new_state = _move(conn, actor, campaign_id, "start", version_id=version_id,
                      started_at=campaign["started_at"] or now, pause_reason=None)
    test = splittest.get(conn, campaign_id)
    if test is not None:
        splittest.pin(conn, {**campaign, "version_id": version_id}, test)
    build_ledger(conn, campaign_id, settings)
    started = get_campaign(conn, campaign_id)
    startcheck.refuse_unrenderable(conn, settings, started, list_names(conn, started))
    return new_state


def build_ledger(conn: Connection, campaign_id: int, settings) -> int:
    """The campaign's ledger, once. Its rows are held for a warm-up when its mail counts
    against one today (delivery/warmup.py; deliverability releases them by the quota)."""
    campaign = get_campaign(conn, campaign_id)
    if campaign["ledger_built"]:
        return campaign["total"]
    query = audience.audience_query(conn, campaign["list_ids"], campaign["segment_ids"],
                                    campaign["exclude_list_ids"], campaign["exclude_segment_ids"])
    hold = ledger.WARMUP_HOLD if warmups(settings, campaign["from_email"],
                                         utcnow().date()) else None
    test = splittest.get(conn, campaign_id)
    if test is not None:
        total = splittest.materialise(conn, campaign_id, query, test)
        if hold:
            ledger.hold_queued(conn, campaign_id, hold)
        return total
    if campaign["send_at_local"]:
        zones, zone, dues = localtime.plan(conn, query, campaign, utcnow())
        localtime.store_zones(conn, campaign_id, zones)
        return ledger.materialise(conn, campaign_id, query, zone=zone, hold=hold,
                                  due=lambda column: localtime.due_expression(column, dues))
    return ledger.materialise(conn, campaign_id, query, hold=hold)


def defer_quiet(conn: Connection, campaign_id: int) -> int:
    """A local-time campaign's queued rows in zones now in their quiet hours wait for the
    hours' end (the send run calls this before it asks when the next row is due)."""
    campaign = get_campaign(conn, campaign_id)
    if not campaign["send_at_local"] or not campaign["local_zones"]:
        return 0
    return localtime.defer_quiet(conn, campaign, utcnow())


def schedule(conn: Connection, actor: Actor, settings, campaign_id: int) -> str:
    campaign = get_campaign(conn, campaign_id)
    if campaign["schedule_at"] is None:
        raise Conflict("set a date and time first", "schedule_at")
    _check_sendable(settings, campaign)
    return _move(conn, actor, campaign_id, "schedule", pause_reason=None)


LATE_START = "Late start"


def hold_if_late(conn: Connection, actor: Actor, settings, campaign_id: int,
                 now: datetime | None = None) -> bool:
    """A scheduled campaign whose time passed more than campaigns.max_lateness ago (the
    service was down across it) does not start by itself: it goes back to draft with the
    reason on its page and in the API, audited, until someone starts or schedules it again."""
    campaign = get_campaign(conn, campaign_id)
    if campaign["state"] != "scheduled" or campaign["schedule_at"] is None:
        return False
    late = (now or utcnow()) - campaign["schedule_at"]
    limit = float(settings["campaigns.max_lateness"])
    if late <= timedelta(hours=limit):
        return False
    hours = round(late.total_seconds() / 3600, 1)
    reason = (f"{LATE_START}: scheduled for {campaign['schedule_at']:%Y-%m-%d %H:%M} UTC, "
              f"{hours:g} h late (more than campaigns.max_lateness, {limit:g} h). "
              "Start it now, or schedule it again.")
    _move(conn, actor, campaign_id, "pause", pause_reason=reason)
    record(conn, actor, "campaign.late_start_held", "campaign", campaign_id,
           schedule_at=campaign["schedule_at"], late_hours=hours, max_lateness=limit)
    return True


def late_start(campaign: dict) -> dict | None:
    """What the page shows of a campaign held by the late-start guard: its schedule and how
    late it was (None: not held)."""
    reason = campaign.get("pause_reason") or ""
    if campaign.get("state") != "draft" or not reason.startswith(f"{LATE_START}:"):
        return None
    late = reason.split(", ", 1)[1].split(" h late", 1)[0] if ", " in reason else "?"
    return {"schedule_at": campaign["schedule_at"], "hours": late}


def pause(conn: Connection, actor: Actor, campaign_id: int, reason: str | None = None) -> str:
    return _move(conn, actor, campaign_id, "pause", pause_reason=reason)


def resume(conn: Connection, actor: Actor, campaign_id: int) -> str:
    return _move(conn, actor, campaign_id, "resume", pause_reason=None)


def cancel(conn: Connection, actor: Actor, campaign_id: int) -> str:
    new_state = _move(conn, actor, campaign_id, "cancel", finished_at=utcnow())
    ledger.cancel_rows(conn, campaign_id)
    return new_state


def pause_by_system(conn: Connection, campaign_id: int, reason: str) -> None:
    """The sender pauses a campaign it cannot send (every relay down)."""
    paused = conn.execute(update(campaigns).where(campaigns.c.id == campaign_id,
                                                  campaigns.c.state == "running")
                          .values(state="paused", pause_reason=reason, updated_at=utcnow())).rowcount
    if paused:
        events.CAMPAIGN_PAUSED.emit(conn, campaign_id=campaign_id, reason=reason)


def finish_if_done(conn: Connection, campaign_id: int) -> bool:
    found = ledger.counts(conn, campaign_id)
    if found["queued"] or found["leased"] or found["held"]:
        return False
    if conn.execute(select(campaigns.c.workflow_id).where(campaigns.c.id == campaign_id)).scalar():
        return False            # a workflow's send node: more rows come while it runs
    if conn.execute(select(campaigns.c.transactional).where(campaigns.c.id == campaign_id)).scalar():
        # The transactional API's carrier: more requests come, unless a newer one took over.
        return transactional.superseded(conn, campaign_id) and conn.execute(
            update(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.state == "running")
            .values(state="finished", finished_at=utcnow(), updated_at=utcnow())).rowcount == 1
    result = conn.execute(update(campaigns).where(campaigns.c.id == campaign_id,
                                                  campaigns.c.state == "running")
                          .values(state="finished", finished_at=utcnow(), updated_at=utcnow()))
    if result.rowcount == 1:
        events.CAMPAIGN_FINISHED.emit(conn, campaign_id=campaign_id)
    return result.rowcount == 1


def due_scheduled(conn: Connection, now: datetime | None = None) -> list[int]:
    now = now or utcnow()
    return list(conn.execute(select(campaigns.c.id).where(
        campaigns.c.state == "scheduled", campaigns.c.schedule_at <= now)).scalars())


def running(conn: Connection) -> list[int]:
    return list(conn.execute(select(campaigns.c.id).where(campaigns.c.state == "running")).scalars())


def progress(conn: Connection, campaign_id: int) -> dict[str, Any]:
    """total, sent, failed, in_doubt, skipped, cancelled, remaining, rate (msgs/s over the
    last minute) and eta (seconds) — what the page and the API show."""
    campaign = get_campaign(conn, campaign_id)
    found = ledger.counts(conn, campaign_id)
    sendable = found["queued"] + found["leased"]
    remaining = sendable + found["held"]        # held: a split test's rest, waiting for its winner
    window = 60
    recent = ledger.sent_since(conn, campaign_id, utcnow() - timedelta(seconds=window))
    started, finished = campaign["started_at"], campaign["finished_at"]
    if started is not None and campaign["state"] == "running":
        elapsed = min(window, max((utcnow() - started).total_seconds(), 1.0))
        rate = round(recent / elapsed, 1)
    elif started is not None and finished is not None:      # the average of the whole run
        rate = round(found["sent"] / max((finished - started).total_seconds(), 0.001), 1)
    else:
        rate = 0.0
    held_warmup = ledger.count_held(conn, campaign_id, ledger.WARMUP_HOLD) if found["held"] else 0
    return {"total": campaign["total"], "sent": found["sent"], "failed": found["failed"],
            "in_doubt": found["in_doubt"], "skipped": found["skipped"],
            "cancelled": found["cancelled"], "remaining": remaining, "held": found["held"],
            "rate": rate, "eta_seconds": round(sendable / rate) if rate and sendable else None,
            "held_warmup": held_warmup,
            "zones_to_come": localtime.zones_to_come(conn, campaign, utcnow())}


def warmup_holds(conn: Connection, campaign_id: int) -> dict | None:
    """Why rows are held for a warm-up (extensions.CAMPAIGN_HOLDS); None when none are."""
    return next((found for found in extensions.CAMPAIGN_HOLDS.collect(conn, campaign_id) if found),
                None)


def deliveries_page(conn: Connection, campaign_id: int, state_filter: str | None = None,
                    limit: int = 100, offset: int = 0) -> list[dict]:
    query = select(deliveries.c.id, deliveries.c.subscriber_id, subscribers.c.email,
                   deliveries.c.state, deliveries.c.attempts, deliveries.c.message_id,
                   deliveries.c.reply, deliveries.c.done_at).join(
        subscribers, subscribers.c.id == deliveries.c.subscriber_id, isouter=True).where(
        deliveries.c.campaign_id == campaign_id)
    if state_filter:
        query = query.where(deliveries.c.state == state_filter)
    rows = conn.execute(query.order_by(deliveries.c.id).limit(limit).offset(offset)).mappings()
    return [dict(r) for r in rows]


def failure_reasons(conn: Connection, campaign_id: int, limit: int = 10) -> list[dict]:
    """Why rows ended failed or in doubt: each (state, reason) with how many rows, most first."""
    d = deliveries.c
    count = func.count().label("count")
    query = (select(d.state, d.reply, count)
             .where(d.campaign_id == campaign_id, d.state.in_(("failed", "in_doubt")))
             .group_by(d.state, d.reply).order_by(count.desc(), d.state, d.reply).limit(limit))
    return [dict(row) for row in conn.execute(query).mappings()]


# --- for the sender ---------------------------------------------------------------------------

def list_names(conn: Connection, campaign: dict[str, Any]) -> dict[int, str]:
    return dict(conn.execute(select(lists_table.c.id, lists_table.c.name).where(
        lists_table.c.id.in_(campaign["list_ids"]))).all())


def recipients(conn: Connection, campaign_id: int, subscriber_ids: list[int]) -> tuple[dict, set]:
    """Render contexts of a batch, and which of them may still be sent to (send-time check)."""
    campaign = get_campaign(conn, campaign_id)
    if campaign["workflow_id"] is not None:
        people = audience.render_context(conn, subscriber_ids)
        for sid, event in occurrences.events_of(conn, campaign_id, subscriber_ids).items():
            if sid in people:
                people[sid]["event"] = event
        return people, occurrences.sendable(conn, subscriber_ids)
    query = audience.audience_query(conn, campaign["list_ids"], campaign["segment_ids"],
                                    campaign["exclude_list_ids"], campaign["exclude_segment_ids"])
    sendable = set(conn.execute(query.where(subscribers.c.id.in_(subscriber_ids))).scalars())
    return audience.render_context(conn, subscriber_ids), sendable


def recipient_lists(conn: Connection, campaign_id: int, subscriber_ids: list[int]) -> dict[int, int]:
    """The list each recipient of a campaign to several lists gets it through (their List-Id):
    the first of the campaign's lists they are a confirmed member of. {} for one list or none."""
    lists = list(get_campaign(conn, campaign_id)["list_ids"] or [])
    if len(lists) < 2:
        return {}
    return audience.first_confirmed_list(conn, subscriber_ids, lists)


def tracking_targets(conn: Connection, campaign_id: int, version_id: int) -> list[tuple[int, str]]:
    """(link index, URL with the campaign's UTM marks) for the click endpoint."""
    row = conn.execute(select(campaigns.c.utm, campaigns.c.link_utm).where(
        campaigns.c.id == campaign_id)).first()
    utm, link_utm = (row.utm, row.link_utm) if row is not None else ({}, {})
    return [(index, with_utm(url, link_marks(utm, link_utm, index)))
            for index, url in version_links(conn, version_id)]
