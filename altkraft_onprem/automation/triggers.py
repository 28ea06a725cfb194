"""From outbox rows to workflows: who enters which active workflow, whose wait for an event
ends, who leaves (unsubscribed, suppressed, deleted).

Runs inside the dispatcher's transaction for one outbox row; every enrollment is keyed by
(row, workflow, person), so dispatching a row twice enrolls no one twice.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from sqlalchemy import Connection, select

from altkraft_onprem.audience.models import subscribers

from . import enrollment as enrollments
from . import runner, versions
from .workflow_models import workflow_versions, workflows

CUSTOM_EVENT = "automation.event"       # POST /api/v1/events (written by automation itself)
TRIGGER_EVENTS: dict[str, set[str]] = {
    "subscriber_created": {"subscriber.created", "subscribers.imported"},
    "list_joined": {"subscription.joined", "subscribers.imported"},
    "optin_confirmed": {"subscription.confirmed"},
    "field_changed": {"subscriber.updated"},
    "unsubscribed": {"subscription.unsubscribed"},
    "restored": {"subscriber.restored"},
    "email_opened": {"email.tracked"}, "email_read": {"email.tracked"},
    "email_clicked": {"email.tracked"}, "email_delivered": {"delivery.outcomes"},
    "bounced": {"email.bounced"}, "complained": {"email.complained"},
    "event": {CUSTOM_EVENT}, "manual": set(),
}
# Whenever a workflow runs: people leave when they unsubscribe, are suppressed or deleted.
EXIT_EVENTS = {"subscription.unsubscribed", "suppression.added", "subscriber.deleted",
               "subscriber.erased"}
WAKING_EVENTS = {CUSTOM_EVENT, "email.tracked"}       # may end a wait_for_event
TRACKED = {"open": "email_opened", "read": "email_read", "click": "email_clicked"}
AWAITABLE_TRACKED = {"open": "email.opened", "click": "email.clicked"}


def active(conn: Connection) -> list[tuple[dict, dict]]:
    """(workflow, published version) of every active workflow."""
    rows = conn.execute(select(workflows).where(workflows.c.state == "active",
                                                workflows.c.version_id.is_not(None))).mappings()
    return [(dict(r), versions.version(conn, r["version_id"])) for r in rows]


def interest(conn: Connection) -> set[str]:
    """The domain events active workflows need recorded (interest.py asks)."""
    running = active(conn)
    if not running:
        return set()
    names = set(EXIT_EVENTS) | {CUSTOM_EVENT}
    for _, version in running:
        names |= TRIGGER_EVENTS.get(version["definition"]["trigger"]["type"], set())
        if any(n["type"] == "wait_for_event" and n["config"]["event"].startswith("email.")
               for n in version["definition"]["graph"]["nodes"]):
            names.add("email.tracked")
    return names


def _source(text: str) -> str:
    head = (text or "").partition(":")[0]
    return head if head in ("form", "import", "api") else "manual"


def matches(trigger: dict, name: str, payload: dict,
            own_campaigns: Collection[int] = ()) -> list[tuple[int, dict]]:
    """(subscriber id, the event as {{ event.… }} shows it) for each person this row brings
    into a workflow with this trigger. `own_campaigns`: the workflow's own send nodes'
    campaigns, whose delivered emails do not bring anyone in (email_delivered would loop)."""
    kind = trigger["type"]
    if name not in TRIGGER_EVENTS.get(kind, ()):
        return []
    wanted_list = trigger.get("list_id")
    if kind == "subscriber_created":
        if name == "subscribers.imported":
            source = "import" if payload["import_id"] is not None else "api"
            if trigger.get("source") in (None, source):
                return [(sid, {"source": source}) for sid in payload["added"]]
            return []
        source = _source(payload["source"])
        return [(payload["subscriber_id"], {"source": source})] \
            if trigger.get("source") in (None, source) else []
    if kind == "list_joined" and name == "subscribers.imported":
        return [(sid, {"list_id": list_id}) for list_id, ids in payload["joined"]
                if wanted_list in (None, list_id) for sid in ids]
    if kind in ("list_joined", "optin_confirmed", "unsubscribed"):
        if wanted_list not in (None, payload["list_id"]):
            return []
        return [(payload["subscriber_id"], {"list_id": payload["list_id"]})]
    if kind == "field_changed":
        change = payload["changes"].get(trigger["field"])
        if change is None:
            return []
        for key in ("from", "to"):
            if trigger.get(key) is not None and str(trigger[key]) != str(change[key]):
                return []
        return [(payload["subscriber_id"], {"field": trigger["field"], **change})]
    if kind == "restored":
        return [(sid, {}) for sid in payload["subscriber_ids"]]
    if kind in TRACKED.values():
        return [(e["subscriber_id"], {k: e.get(k) for k in ("campaign_id", "link_index", "at")})
                for e in payload["events"] if TRACKED.get(e.get("kind")) == kind and not e.get("machine")
                and trigger.get("campaign_id") in (None, e.get("campaign_id"))
                and trigger.get("link_index") in (None, e.get("link_index"))]
    if kind == "email_delivered":
        # [campaign id, subscriber id, occurrence, state] of each ledger row that reached its end
        return [(subscriber_id, {"campaign_id": campaign_id})
                for campaign_id, subscriber_id, _occurrence, state in payload["outcomes"]
                if state == "sent" and subscriber_id and campaign_id not in own_campaigns
                and trigger.get("campaign_id") in (None, campaign_id)]
    if kind in ("bounced", "complained"):
        if payload.get("subscriber_id") is None:
            return []
        if kind == "bounced" and trigger.get("bounce_class") not in (None, payload.get("bounce_class")):
            return []
        return [(payload["subscriber_id"], {k: v for k, v in payload.items() if k != "subscriber_id"})]
    if kind == "event" and payload["name"] == trigger["name"]:
        return [(payload["subscriber_id"], {"name": payload["name"], **payload["properties"]})]
    return []


def fan_out(conn: Connection, rows: list[dict], wake=None) -> int:
    """Exits, event waits and entries for a batch of outbox rows, in their order; returns how
    many entered. Entries are gathered per workflow and inserted together — before any row
    that makes people leave or wakes a wait, so a later row still acts after an earlier one."""
    running = active(conn)
    if not running:
        return 0
    pending: dict[int, list[enrollments.Entry]] = defaultdict(list)
    own: dict[int, frozenset[int]] = {}
    entered = 0

    def enter_pending() -> None:
        nonlocal entered
        for workflow, version in running:
            entries = pending.pop(workflow["id"], None)
            if entries:
                entered += len(enrollments.enter_many(conn, workflow, version, entries, wake=wake))

    for row in rows:
        name, payload = row["type"], row["payload"]
        if name in EXIT_EVENTS or name in WAKING_EVENTS:
            enter_pending()
            _exits(conn, name, payload, running, wake)
            _wake_waits(conn, name, payload)
        for workflow, version in running:
            trigger = version["definition"]["trigger"]
            if name in TRIGGER_EVENTS["email_delivered"] and trigger["type"] == "email_delivered" \
                    and workflow["id"] not in own:
                own[workflow["id"]] = _own_campaigns(conn, workflow["id"])
            for subscriber_id, event in matches(trigger, name, payload,
                                                own.get(workflow["id"], ())):
                pending[workflow["id"]].append(enrollments.Entry(
                    subscriber_id, f"o{row['id']}:{workflow['id']}:{subscriber_id}", event))
    enter_pending()
    return entered


def _own_campaigns(conn: Connection, workflow_id: int) -> frozenset[int]:
    """The campaigns of a workflow's send nodes, in every version it had (people on an older
    version still get that version's emails)."""
    return frozenset(campaign_id for campaigns in conn.execute(
        select(workflow_versions.c.campaigns).where(workflow_versions.c.workflow_id == workflow_id)
    ).scalars() for campaign_id in (campaigns or {}).values())


def _exits(conn: Connection, name: str, payload: dict, running, wake) -> None:
    if name in ("subscriber.deleted", "subscriber.erased"):
        enrollments.exit_people(conn, payload["subscriber_ids"], "the subscriber was deleted",
                                wake=wake)
    elif name == "suppression.added":
        target = subscribers.c.email == payload["email"] if payload["email"] else \
            subscribers.c.email_domain == payload["domain"]
        ids = list(conn.execute(select(subscribers.c.id).where(target)).scalars())
        if ids:
            enrollments.exit_people(conn, ids, "the address was suppressed (unsubscribed from "
                                    "everything, bounced or complained)", wake=wake)
    elif name == "subscription.unsubscribed":
        tied = [w["id"] for w, v in running
                if v["definition"]["trigger"].get("list_id") in (None, payload["list_id"])
                and v["definition"]["trigger"]["type"] != "unsubscribed"]
        if tied:
            enrollments.exit_people(conn, [payload["subscriber_id"]], "unsubscribed from list "
                                    f"{payload['list_id']}", workflow_ids=tied, wake=wake)


def _wake_waits(conn: Connection, name: str, payload: dict) -> None:
    if name == CUSTOM_EVENT:
        runner.wake_waiting(conn, payload["subscriber_id"], payload["name"])
    elif name == "email.tracked":
        for event in payload["events"]:
            awaited = AWAITABLE_TRACKED.get(event.get("kind"))
            if awaited and not event.get("machine"):
                runner.wake_waiting(conn, event["subscriber_id"], awaited)
