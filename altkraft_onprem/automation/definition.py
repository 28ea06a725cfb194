"""The workflow JSON (the contract): its schema as pydantic models — the same models validate
at publish, at the API and in the OpenAPI document, where each node type's config is a schema.

    {"name", "trigger": {"type", …}, "entry": {"segment_id"?, "reentry"},
     "graph": {"start": NODE_ID, "nodes": [{"id", "type", "config"}], "edges": [{"from", "to", "branch"?}]}}
"""
from __future__ import annotations

import functools
import operator
import re
import zoneinfo
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from altkraft_onprem.api import MAX_ID, NON_BLANK, zone_enum

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
NodeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM, local time")]
Weekday = Annotated[int, Field(ge=1, le=7, description="1 Monday … 7 Sunday")]
FieldName = Annotated[str, Field(min_length=1, max_length=80, description="A standard field "
                                 "(first_name, birth_date, …) or custom.KEY")]
Duration = Annotated[timedelta, Field(description="ISO 8601, e.g. PT2H, P3D")]
BRANCH_NAME = re.compile(r"^[a-z0-9_]{1,32}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- triggers ---------------------------------------------------------------------------------

class _Trigger(Strict):
    pass


class SubscriberCreated(_Trigger):
    type: Literal["subscriber_created"]
    source: Literal["form", "import", "api", "manual"] | None = Field(
        None, description="Only people added this way (any way when absent)")


class ListJoined(_Trigger):
    type: Literal["list_joined"]
    list_id: Id | None = Field(None, description="Any list when absent")


class OptinConfirmed(_Trigger):
    type: Literal["optin_confirmed"]
    list_id: Id | None = None


class FieldChanged(_Trigger):
    type: Literal["field_changed"]
    field: FieldName
    from_: Any = Field(None, alias="from", description="Only a change from this value")
    to: Any = Field(None, description="Only a change to this value")


class SegmentChange(_Trigger):
    type: Literal["segment_entered", "segment_left"]
    segment_id: Id


class Unsubscribed(_Trigger):
    type: Literal["unsubscribed"]
    list_id: Id | None = None


class Restored(_Trigger):
    type: Literal["restored"]


class DateField(_Trigger):
    type: Literal["date_field"]
    field: FieldName = Field(description="A date field: birth_date or custom.KEY of type date")
    offset_days: int = Field(0, ge=-366, le=366, description="Days after (negative: before) "
                             "the date")
    time: Clock = "09:00"
    yearly: bool | None = Field(None, description="Every year on the month and day (29 February: "
                                "the 28th in other years); default: yes for birth_date, no "
                                "otherwise")


class Schedule(_Trigger):
    type: Literal["schedule"]
    weekdays: list[Weekday] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], min_length=1)
    time: Clock = Field("09:00", description="In the workflow's time zone")
    segment_id: Id | None = Field(None, description="Who enters each time (everyone when absent)")


class Engagement(_Trigger):
    type: Literal["email_opened", "email_read", "email_clicked"]
    campaign_id: Id | None = None
    link_index: int | None = Field(None, ge=0, le=10_000, description="email_clicked: one link")


class Delivered(_Trigger):
    type: Literal["email_delivered"]
    campaign_id: Id | None = Field(None, description="A campaign's email (any email when "
                                   "absent): accepted by the receiving server")


class NoEngagement(_Trigger):
    type: Literal["not_opened", "not_clicked"]
    campaign_id: Id = Field(description="The campaign whose email was not opened / clicked")
    within: Duration = Field(description="ISO 8601 after the email was sent, e.g. P3D")


class Bounced(_Trigger):
    type: Literal["bounced"]
    bounce_class: Literal["hard", "soft", "policy", "content", "unknown"] | None = None


class Complained(_Trigger):
    type: Literal["complained"]


class CustomEvent(_Trigger):
    type: Literal["event"]
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")


class Manual(_Trigger):
    type: Literal["manual"]


Trigger = Annotated[SubscriberCreated | ListJoined | OptinConfirmed | FieldChanged | SegmentChange
                    | Unsubscribed | Restored | DateField | Schedule | Engagement | Delivered
                    | NoEngagement
                    | Bounced | Complained | CustomEvent | Manual, Field(discriminator="type")]
TRIGGER_TYPES = ("subscriber_created", "list_joined", "optin_confirmed", "field_changed",
                 "segment_entered", "segment_left", "unsubscribed", "restored", "date_field",
                 "schedule", "email_delivered", "email_opened", "email_read", "email_clicked",
                 "not_opened",
                 "not_clicked", "bounced", "complained", "event", "manual")


class Entry(Strict):
    segment_id: Id | None = Field(None, description="Only people in this segment enter")
    reentry: Literal["once", "every_time"] | dict[Literal["after_days"], Annotated[
        int, Field(ge=1, le=3650)]] = Field("once", description='"once", "every_time" or '
                                            '{"after_days": N}')
    exit_segment_id: Id | None = Field(None, description="People leave the workflow when they "
                                       "are in this segment")
    backfill: Literal["none", "matching"] | dict[Literal["days"], Annotated[
        int, Field(ge=1, le=365)]] = Field("none", description='When the workflow becomes '
                                           'active: "none", "matching" (everyone who matches '
                                           'the trigger now) or {"days": N} (those who would '
                                           'have entered in the last N days)')


# --- node configs -----------------------------------------------------------------------------

class SendEmail(Strict):
    message_id: Id
    from_email: str = Field(min_length=3, max_length=320)
    from_name: str = Field("", max_length=200)
    utm: dict[Literal["utm_source", "utm_medium", "utm_campaign", "utm_content"],
              Annotated[str, Field(max_length=200)]] | None = None


class Notify(Strict):
    to: list[Annotated[str, Field(min_length=3, max_length=320)]] = Field(
        min_length=1, max_length=20, description="Staff users' email addresses")
    subject: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=300)
    text: str = Field("", max_length=5000)


class Webhook(Strict):
    url: str = Field(min_length=1, max_length=2000, description="A template: {{ subscriber.… }}, "
                     "{{ event.… }}")
    method: Literal["POST", "PUT", "PATCH", "GET"] = "POST"
    body: str | None = Field(None, max_length=20_000, description="A template (JSON text); "
                             "absent: {subscriber, event}")
    map: dict[Annotated[str, Field(max_length=200)], FieldName] = Field(
        default_factory=dict, description="Response JSON key -> custom field")
    max_attempts: int = Field(6, ge=1, le=20)


class Wait(Strict):
    duration: Duration


class WaitUntil(Strict):
    """Exactly one of: `at`; `weekdays` (+ `time`); a date `field` (+ `offset_days`, `time`);
    or `conditions` (+ `timeout`): until the person matches the segment conditions, looked
    at when they arrive and every `check_every`, else after `timeout` by the "timeout"
    branch."""
    at: datetime | None = Field(None, description="A moment (with a zone, or wall time in the "
                                "person's zone)")
    weekdays: list[Weekday] | None = None
    time: Clock | None = None
    field: FieldName | None = Field(None, description="A date field; with offset_days and time")
    offset_days: int = Field(0, ge=-3660, le=3660)
    conditions: dict | None = Field(None, description="Segment conditions (AND/OR groups): go "
                                    "on as soon as the person matches them")
    timeout: Duration | None = Field(None, description="With conditions: give up after this "
                                     "long (ISO 8601, e.g. P7D) and leave by the \"timeout\" branch")
    check_every: Duration = Field(timedelta(minutes=5), description="With conditions: how often "
                                  "they are looked at again (at least PT1M)")

    @field_validator("check_every")
    @classmethod
    def _often_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("check_every must be at least PT1M")
        return value


class WaitForEvent(Strict):
    event: str = Field(min_length=1, max_length=100, description="A custom event name, or "
                       "email.opened / email.clicked")
    timeout: Duration


class Condition(Strict):
    conditions: dict = Field(description="Segment conditions (AND/OR groups)")


class SwitchCase(Strict):
    branch: str = Field(pattern=BRANCH_NAME.pattern)
    conditions: dict


class Switch(Strict):
    cases: list[SwitchCase] = Field(min_length=1, max_length=10)


class SplitWinner(Strict):
    metric: Literal["opens", "clicks", "click_to_open"] = Field(
        "opens", description="How the test group's emails are compared (human events only)")
    test_size: int = Field(ge=2, le=1_000_000, description="The first this many people go by "
                           "weight (the test group)")
    wait: Duration = Field(description="After the last of the test group: then the winner is "
                           "chosen (ISO 8601, e.g. P1D); people arriving meanwhile wait for it")


class Split(Strict):
    variants: dict[Annotated[str, Field(pattern=BRANCH_NAME.pattern)],
                   Annotated[int, Field(ge=1, le=100)]] = Field(min_length=2, max_length=5,
                                                                description="branch -> weight")
    winner: SplitWinner | None = Field(None, description="Choose a winner automatically (the "
                                       "campaigns' split-test rules): each branch is judged by "
                                       "the first email on its path")


class Goal(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=100)


class Exit(Strict):
    reason: str = Field("", max_length=200)


class Goto(Strict):
    target: NodeId
    max_visits: int = Field(ge=1, le=100, description="Jumps while the target was visited "
                            "fewer times; then the node's own edge (or the end)")


class Enroll(Strict):
    workflow_id: Id


class UpdateFields(Strict):
    fields: dict[FieldName, Any] = Field(min_length=1, max_length=50)


class AddToList(Strict):
    list_id: Id
    status: Literal["confirmed", "unconfirmed"] = "confirmed"


class RemoveFromList(Strict):
    list_id: Id


class Suppress(Strict):
    reason: str = Field("workflow", max_length=200)


class FrequencyCap(Strict):
    max_emails: int = Field(ge=1, le=1000)
    days: int = Field(ge=1, le=365, description="The rolling window")


class SendWindow(Strict):
    start: Clock
    end: Clock
    weekdays: list[Weekday] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])


CONFIGS: dict[str, type[BaseModel]] = {
    "send_email": SendEmail, "notify": Notify, "webhook": Webhook, "wait": Wait,
    "wait_until": WaitUntil, "wait_for_event": WaitForEvent, "condition": Condition,
    "switch": Switch, "split": Split, "goal": Goal, "exit": Exit, "goto": Goto, "enroll": Enroll,
    "update_fields": UpdateFields, "add_to_list": AddToList, "remove_from_list": RemoveFromList,
    "suppress": Suppress, "frequency_cap": FrequencyCap, "send_window": SendWindow,
}
# Branch names a node's edges may carry (None: the plain edge). Switch and split name theirs.
BRANCHES: dict[str, tuple[str | None, ...]] = {
    "condition": ("yes", "no"), "wait_for_event": ("event", "timeout"),
    "webhook": (None, "failure"), "frequency_cap": (None, "capped"), "exit": (),
}


class _Node(Strict):
    id: NodeId
    name: str = Field("", max_length=200, description="The label in the builder")
    position: dict[Literal["x", "y"], float] | None = Field(None, description="In the builder")


def _node_model(node_type: str, config: type[BaseModel]) -> type[BaseModel]:
    camel = "".join(part.title() for part in node_type.split("_")) + "Node"
    return create_model(camel, __base__=_Node, type=(Literal[node_type], ...),
                        config=(config, ...))


NODE_MODELS = [_node_model(name, config) for name, config in CONFIGS.items()]
Node = Annotated[functools.reduce(operator.or_, NODE_MODELS), Field(discriminator="type")]


class Edge(Strict):
    from_: NodeId = Field(alias="from")
    to: NodeId
    branch: str | None = Field(None, max_length=32)


class Graph(Strict):
    start: NodeId
    nodes: list[Node] = Field(min_length=1, max_length=500)
    edges: list[Edge] = Field(default_factory=list, max_length=2000)


class WorkflowDefinition(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    trigger: Trigger
    entry: Entry = Field(default_factory=Entry)
    graph: Graph
    timezone: str = Field("UTC", max_length=64, description="For people without a time zone",
                          json_schema_extra=zone_enum)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


# Which triggers a backfill on activation can serve: "matching" needs a state to match now
# (a membership, a segment, a field's value, an engagement), {"days": N} a record of the past.
BACKFILL_MATCHING = {"subscriber_created", "manual", "schedule", "restored", "list_joined",
                     "optin_confirmed", "unsubscribed", "segment_entered", "field_changed",
                     "email_opened", "email_read", "email_clicked"}
BACKFILL_DAYS = {"subscriber_created", "list_joined", "optin_confirmed", "unsubscribed",
                 "email_opened", "email_read", "email_clicked", "event", "date_field", "schedule",
                 "not_opened", "not_clicked"}


def backfill_possible(definition: WorkflowDefinition) -> bool:
    backfill, trigger = definition.entry.backfill, definition.trigger
    if backfill == "none":
        return True
    if backfill == "matching":
        return trigger.type in BACKFILL_MATCHING and (
            trigger.type != "field_changed" or trigger.to is not None)
    return trigger.type in BACKFILL_DAYS


def dump(definition: WorkflowDefinition) -> dict:
    """The JSON form (as stored in a version)."""
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)
