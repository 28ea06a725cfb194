"""What each node type does to one enrolled person, inside the step's transaction.

An executor returns an Outcome: the branch to leave by, or a time to wait until (the runner
stores it and comes back then), or the end. Internal effects (fields, lists, suppression,
the ledger row of an email, a goal) are written through the owning domain's services on the
step's connection, so they commit exactly once with the step. The HTTP node (webhook) is the
exception: see http_node.py.
"""
from __future__ import annotations

import hashlib
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import TypeAdapter
from sqlalchemy import Connection, func, select

from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience import subscribers as subscriber_service
from altkraft_onprem.audience.models import STANDARD_FIELDS, subscribers
from altkraft_onprem.campaigns.models import deliveries

from . import enrollment as enrollments
from . import outbox, staff_notice, timing
from .workflow_models import steps as step_rows
from .workflow_models import workflow_versions, workflows


@dataclass
class Outcome:
    branch: str | None = None
    wait_until: datetime | None = None      # come back then (the node is not done)
    jump: str | None = None                 # goto: the next node, instead of an edge
    end: str | None = None                  # exit: the reason
    detail: dict = field(default_factory=dict)


@dataclass
class Step:
    conn: Connection
    settings: object
    enrollment: dict
    definition: dict
    node: dict
    now: datetime
    person: dict | None                     # render context (None: deleted)
    wake: Callable[[], None] | None = None
    send_email: Callable | None = None      # (step, step_id) -> detail; set by the runner

    @property
    def config(self) -> dict:
        return self.node["config"]

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        own = (self.person or {}).get("timezone")
        return timing.zone(own, self.definition.get("timezone", "UTC"))

    @property
    def subscriber_id(self) -> int:
        return self.enrollment["subscriber_id"]

    @property
    def actor(self):
        return system_actor(f"workflow {self.enrollment['workflow_id']}")

    def waited(self) -> bool:
        """The wait this node asked for is over (or compressed: a test enrollment)."""
        until = self.enrollment["waiting_until"]
        return until is not None and self.now >= until

    def wait(self, target: datetime, **detail) -> Outcome:
        """Wait until `target` (a test enrollment goes on at once)."""
        if self.enrollment["test"] or target <= self.now or self.waited():
            return Outcome(detail={**detail, "until": target.isoformat(),
                                   **({"compressed": True} if self.enrollment["test"] else {})})
        return Outcome(wait_until=target, detail=detail)


# --- waits ------------------------------------------------------------------------------------

def _field_value(step: Step, name: str):
    person = step.person or {}
    if name in STANDARD_FIELDS:
        return person.get(name) or None
    return (person.get("custom") or {}).get(name.removeprefix("custom."))


def wait(step: Step) -> Outcome:
    until = step.enrollment["waiting_until"] or timing.after_duration(
        step.now, _duration(step.config["duration"]), step.tz)
    return step.wait(until)


_DURATION = TypeAdapter(timedelta)


def _duration(text: str) -> timedelta:
    """An ISO 8601 duration as stored in a version ("PT2H", "P3D")."""
    return _DURATION.validate_python(text)


def wait_until(step: Step) -> Outcome:
    if step.enrollment["waiting_until"] is not None:
        return step.wait(step.enrollment["waiting_until"])
    config, tz = step.config, step.tz
    if config.get("at"):
        moment = datetime.fromisoformat(config["at"].replace("Z", "+00:00"))
        target = moment if moment.tzinfo else timing.local_to_utc(moment, tz)
    elif config.get("weekdays"):
        target = timing.next_weekday_time(step.now, config["weekdays"],
                                          timing.clock(config.get("time") or "09:00"), tz)
    else:
        value = _field_value(step, config["field"])
        if not value:
            return Outcome(detail={"skipped": f"{config['field']} is empty"})
        day = datetime.fromisoformat(str(value)).date()
        target = timing.on_date(day, config.get("offset_days", 0),
                                timing.clock(config.get("time") or "09:00"), tz, step.now)
    return step.wait(target)


def send_window(step: Step) -> Outcome:
    config = step.config
    target = step.enrollment["waiting_until"] or timing.next_window_start(
        step.now, timing.clock(config["start"]), timing.clock(config["end"]),
        config.get("weekdays") or [1, 2, 3, 4, 5, 6, 7], step.tz)
    return step.wait(target)


def wait_for_event(step: Step) -> Outcome:
    if step.enrollment["event_seen"]:
        return Outcome(branch="event")
    if step.waited() or step.enrollment["test"]:
        return Outcome(branch="timeout")
    return Outcome(wait_until=step.now + _duration(step.config["timeout"]),
                   detail={"waiting_for": step.config["event"]})


# --- decisions --------------------------------------------------------------------------------

def _matches(step: Step, conditions: dict) -> bool:
    where = segment_service.matching(step.conn, conditions)
    return step.conn.execute(select(subscribers.c.id).where(
        subscribers.c.id == step.subscriber_id, where)).first() is not None


def condition(step: Step) -> Outcome:
    return Outcome(branch="yes" if _matches(step, step.config["conditions"]) else "no")


def switch(step: Step) -> Outcome:
    for case in step.config["cases"]:
        if _matches(step, case["conditions"]):
            return Outcome(branch=case["branch"])
    return Outcome(branch="default")


def split(step: Step) -> Outcome:
    """A weighted choice, the same however often this visit is replayed."""
    variants = step.config["variants"]
    seed = f"{step.enrollment['id']}:{step.node['id']}:{step.enrollment['visit']}".encode()
    point = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % sum(variants.values())
    for name, weight in variants.items():
        if point < weight:
            return Outcome(branch=name)
        point -= weight
    return Outcome(branch=next(iter(variants)))


def frequency_cap(step: Step) -> Outcome:
    since = step.now - timedelta(days=step.config["days"])
    sent = step.conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.subscriber_id == step.subscriber_id, deliveries.c.state == "sent",
        deliveries.c.done_at >= since)).scalar_one()
    return Outcome(branch="capped" if sent >= step.config["max_emails"] else None,
                   detail={"sent_in_window": sent})


def goal(step: Step) -> Outcome:
    outbox.append(step.conn, "workflow.goal", {
        "workflow_id": step.enrollment["workflow_id"], "subscriber_id": step.subscriber_id,
        "enrollment_id": step.enrollment["id"], "goal": step.config["name"]}, wake=step.wake)
    return Outcome(detail={"goal": step.config["name"]})


def exit_node(step: Step) -> Outcome:
    return Outcome(end=step.config.get("reason") or "exit node")


def goto(step: Step) -> Outcome:
    """Jumps while the target was visited fewer than max_visits times."""
    visits = step.conn.execute(select(func.count()).select_from(step_rows).where(
        step_rows.c.enrollment_id == step.enrollment["id"],
        step_rows.c.node_id == step.config["target"])).scalar_one()
    if visits < step.config["max_visits"]:
        return Outcome(jump=step.config["target"], detail={"visits": visits})
    return Outcome(detail={"visits": visits, "bounded": True})


# --- effects ----------------------------------------------------------------------------------

def enroll(step: Step) -> Outcome:
    target = step.conn.execute(select(workflows).where(
        workflows.c.id == step.config["workflow_id"])).mappings().first()
    if target is None or target["state"] != "active" or target["version_id"] is None:
        return Outcome(detail={"skipped": "that workflow is not active"})
    version = step.conn.execute(select(workflow_versions).where(
        workflow_versions.c.id == target["version_id"])).mappings().one()
    key = f"enroll:{step.enrollment['id']}:{step.node['id']}:{step.enrollment['visit']}"
    entered = enrollments.enter(step.conn, dict(target), dict(version), step.subscriber_id, key,
                                step.enrollment["event"], test=step.enrollment["test"],
                                now=step.now, wake=step.wake)
    return Outcome(detail={"enrollment_id": entered})


def update_fields(step: Step) -> Outcome:
    data: dict = {}
    for name, value in step.config["fields"].items():
        if name in STANDARD_FIELDS:
            data[name] = value
        else:
            data.setdefault("custom", {})[name.removeprefix("custom.")] = value
    changed = subscriber_service.update_subscriber(step.conn, step.actor, step.subscriber_id, data)
    return Outcome(detail={"changed": changed})


def add_to_list(step: Step) -> Outcome:
    previous = subscriber_service.set_membership(step.conn, step.subscriber_id,
                                                 step.config["list_id"], step.config.get("status", "confirmed"))
    return Outcome(detail={"previous": previous})


def remove_from_list(step: Step) -> Outcome:
    subscriber_service.change_memberships(step.conn, step.actor, step.subscriber_id,
                                          remove=[step.config["list_id"]])
    return Outcome()


def suppress(step: Step) -> Outcome:
    entry = audience.suppress(step.conn, step.actor, email=(step.person or {})["email"],
                              reason=step.config.get("reason") or "workflow", source="manual")
    return Outcome(detail={"suppression_id": entry})


def notify(step: Step) -> Outcome:
    """The email to staff goes out after the commit (a job; at least once)."""
    staff_notice.queue(step.conn, step.config, step.person or {}, step.enrollment)
    return Outcome(detail={"to": step.config["to"]})


def send_email(step: Step) -> Outcome:
    return Outcome(detail=step.send_email(step))


EXECUTORS: dict[str, Callable[[Step], Outcome]] = {
    "wait": wait, "wait_until": wait_until, "send_window": send_window,
    "wait_for_event": wait_for_event, "condition": condition, "switch": switch, "split": split,
    "frequency_cap": frequency_cap, "goal": goal, "exit": exit_node, "goto": goto,
    "enroll": enroll, "update_fields": update_fields, "add_to_list": add_to_list,
    "remove_from_list": remove_from_list, "suppress": suppress, "notify": notify,
    "send_email": send_email,
}
