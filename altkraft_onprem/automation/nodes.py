"""What each node type does to a batch of enrolled people, inside the batch's transaction.

Internal effects (fields, lists, suppression, the ledger rows of an email, a goal) are written
through the owning domain's services on the batch's connection, so they commit exactly once
with the step rows. Where a node can act on the whole batch with set-based SQL it does
(conditions, field updates, emails, goals, counts); the rest act person by person through
`each`. The HTTP node (webhook) is the exception: see http_node.py.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from altkraft_onprem import db
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience import subscribers as subscriber_service
from altkraft_onprem.audience.models import STANDARD_FIELDS
from altkraft_onprem.campaigns.models import deliveries

from . import enrollment as enrollments
from . import http_node, mail, outbox, split_winner, staff_notice, timing
from .step_context import Batch, Executor, Outcome, Step, each
from .workflow_models import steps as step_rows
from .workflow_models import workflow_versions, workflows

# --- waits ------------------------------------------------------------------------------------


def field_value(person: dict | None, name: str):
    person = person or {}
    if name in STANDARD_FIELDS:
        return person.get(name) or None
    return (person.get("custom") or {}).get(name.removeprefix("custom."))


def wait(batch: Batch) -> list[Outcome]:
    """A duration with calendar days ends at a local time in each person's zone; one of
    hours, minutes and seconds only is the same moment for everyone (no zone is read)."""
    length = timing.duration(batch.config["duration"])
    if length.days:
        return [step.wait(step.enrollment["waiting_until"] or timing.after_duration(
            step.now, length, step.tz)) for step in batch.steps()]
    same = batch.now + length
    return [step.wait(step.enrollment["waiting_until"] or same) for step in batch.steps()]


def wait_until(batch: Batch) -> list[Outcome]:
    if batch.config.get("conditions") is None:
        return [wait_until_moment(step) for step in batch.steps()]
    return until_conditions(batch)


def until_conditions(batch: Batch) -> list[Outcome]:
    """On by the plain edge once the person matches the conditions (looked at now, then
    every check_every); by "timeout" when the timeout has passed (at once for a test run)."""
    config = batch.config
    met = batch.matching(config["conditions"])
    every = timing.duration(config.get("check_every") or "PT5M")
    outcomes = []
    for step in batch.steps():
        deadline = step.enrollment["waiting_until"]
        if step.subscriber_id in met:
            outcomes.append(Outcome(detail={"met": True}))
        elif step.enrollment["test"] or (deadline is not None and step.now >= deadline):
            outcomes.append(Outcome(branch="timeout", detail={
                "timeout": True, **({"compressed": True} if step.enrollment["test"] else {})}))
        else:
            deadline = deadline or step.now + timing.duration(config["timeout"])
            outcomes.append(Outcome(wait_until=deadline, wake_at=min(step.now + every, deadline)))
    return outcomes


def wait_until_moment(step: Step) -> Outcome:
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
        value = field_value(step.person, config["field"])
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
    return Outcome(wait_until=step.now + timing.duration(step.config["timeout"]),
                   detail={"waiting_for": step.config["event"]})


# --- decisions --------------------------------------------------------------------------------

def condition(batch: Batch) -> list[Outcome]:
    yes = batch.matching(batch.config["conditions"])
    return [Outcome(branch="yes" if sid in yes else "no") for sid in batch.subscriber_ids]


def switch(batch: Batch) -> list[Outcome]:
    """The first case that matches (one query per case)."""
    chosen: dict[int, str] = {}
    for case in batch.config["cases"]:
        for sid in batch.matching(case["conditions"]):
            chosen.setdefault(sid, case["branch"])
    return [Outcome(branch=chosen.get(sid, "default")) for sid in batch.subscriber_ids]


def split(batch: Batch) -> list[Outcome]:
    """By weight; with an automatic winner, by weight for the test group, then the winner."""
    if batch.config.get("winner"):
        return split_winner.route(batch, weighted)
    return [weighted(step) for step in batch.steps()]


def weighted(step: Step) -> Outcome:
    """A weighted choice, the same however often this visit is replayed."""
    variants = step.config["variants"]
    seed = f"{step.enrollment['id']}:{step.node['id']}:{step.enrollment['visit']}".encode()
    point = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") % sum(variants.values())
    for name, weight in variants.items():
        if point < weight:
            return Outcome(branch=name)
        point -= weight
    return Outcome(branch=next(iter(variants)))


def frequency_cap(batch: Batch) -> list[Outcome]:
    since = batch.now - timedelta(days=batch.config["days"])
    sent = batch.counts(lambda chunk: (db.lookup(batch.conn, deliveries.c.subscriber_id, chunk,
                                                 deliveries.c.state == "sent",
                                                 deliveries.c.done_at >= since),),
                        deliveries.c.subscriber_id, batch.subscriber_ids)
    limit = batch.config["max_emails"]
    return [Outcome(branch="capped" if sent.get(sid, 0) >= limit else None,
                    detail={"sent_in_window": sent.get(sid, 0)}) for sid in batch.subscriber_ids]


def goal(batch: Batch) -> list[Outcome]:
    name = batch.config["name"]
    outbox.append_many(batch.conn, "workflow.goal", [
        {"workflow_id": e["workflow_id"], "subscriber_id": e["subscriber_id"],
         "enrollment_id": e["id"], "goal": name} for e in batch.enrollments], wake=batch.wake)
    return [Outcome(detail={"goal": name}) for _ in batch.enrollments]


def exit_node(batch: Batch) -> list[Outcome]:
    return [Outcome(end=batch.config.get("reason") or "exit node") for _ in batch.enrollments]


def goto(batch: Batch) -> list[Outcome]:
    """Jumps while the target was visited fewer than max_visits times."""
    target = batch.config["target"]
    ids = [e["id"] for e in batch.enrollments]
    visits = batch.counts(lambda chunk: (db.among(batch.conn, step_rows.c.enrollment_id, chunk),
                                         step_rows.c.node_id == target),
                          step_rows.c.enrollment_id, ids)
    return [Outcome(jump=target, detail={"visits": visits.get(i, 0)})
            if visits.get(i, 0) < batch.config["max_visits"]
            else Outcome(detail={"visits": visits.get(i, 0), "bounded": True}) for i in ids]


# --- effects ----------------------------------------------------------------------------------

def enroll(batch: Batch) -> list[Outcome]:
    conn = batch.conn
    target = conn.execute(workflows.select().where(
        workflows.c.id == batch.config["workflow_id"])).mappings().first()
    if target is None or target["state"] != "active" or target["version_id"] is None:
        return [Outcome(detail={"skipped": "that workflow is not active"}) for _ in batch.enrollments]
    version = conn.execute(workflow_versions.select().where(
        workflow_versions.c.id == target["version_id"])).mappings().one()
    entered: dict[int, int] = {}
    for test in (False, True):          # test runs stay test runs in the next workflow
        group = [e for e in batch.enrollments if bool(e["test"]) is test]
        if group:
            entered.update(enrollments.enter_many(conn, dict(target), dict(version), [
                enrollments.Entry(e["subscriber_id"], f"enroll:{e['id']}:{batch.node['id']}:{e['visit']}",
                                  e["event"]) for e in group], test=test, now=batch.now, wake=batch.wake))
    return [Outcome(detail={"enrollment_id": entered.get(sid)}) for sid in batch.subscriber_ids]


def update_fields(batch: Batch) -> list[Outcome]:
    data: dict = {}
    for name, value in batch.config["fields"].items():
        if name in STANDARD_FIELDS:
            data[name] = value
        else:
            data.setdefault("custom", {})[name.removeprefix("custom.")] = value
    changed = subscriber_service.update_many(batch.conn, batch.actor, batch.subscriber_ids, data)
    details: dict[tuple, dict] = {}     # one object per set of changed fields (one JSON each)
    return [Outcome(detail=details.setdefault(tuple(changed.get(sid, [])),
                                              {"changed": changed.get(sid, [])}))
            for sid in batch.subscriber_ids]


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


EXECUTORS: dict[str, Executor] = {
    "wait": wait, "wait_until": wait_until, "send_window": each(send_window),
    "wait_for_event": each(wait_for_event), "condition": condition, "switch": switch,
    "split": split, "frequency_cap": frequency_cap, "goal": goal, "exit": exit_node,
    "goto": goto, "enroll": enroll, "update_fields": update_fields,
    "add_to_list": each(add_to_list), "remove_from_list": each(remove_from_list),
    "suppress": each(suppress), "notify": each(notify), "send_email": mail.send_email,
    "webhook": http_node.webhook,
}
