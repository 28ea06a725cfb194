"""REST routes for campaigns: create, read, change, start/pause/resume/cancel, progress."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import g
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.api import MAX_ID, NON_BLANK, Email, Timezone, operation
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import Forbidden, NotFound

from . import actions, breakers, service, splittest
from .models import MAX_UTM_LENGTH, MAX_VARIANTS, MAX_WAIT_HOURS, MIN_VARIANTS

TAG = "Campaigns"
Id = Field(ge=1, le=MAX_ID)
IdItem = Annotated[int, Field(ge=1, le=MAX_ID)]
LinkNumber = Annotated[str, Field(pattern=r"^[0-9]{1,6}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Utm(Strict):
    utm_source: str | None = Field(None, max_length=MAX_UTM_LENGTH)
    utm_medium: str | None = Field(None, max_length=MAX_UTM_LENGTH)
    utm_campaign: str | None = Field(None, max_length=MAX_UTM_LENGTH)
    utm_content: str | None = Field(None, max_length=MAX_UTM_LENGTH)


_TRIMMED = {"pattern": r"^\S([^\r\n]*\S)?$"}     # the service strips; blank is no value


def _no_nulls(schema: dict) -> None:
    """Two variants must differ; with `uniqueItems` on the list, that holds when no value is
    null (null and absent are the same to the service)."""
    for prop in schema["properties"].values():
        prop["anyOf"] = [v for v in prop.pop("anyOf") if v != {"type": "null"}]
        prop.pop("default", None)


class SplitVariant(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_nulls)

    subject: str | None = Field(None, max_length=500, json_schema_extra=_TRIMMED,
                                description="Instead of the message's subject (a template, like it)")
    from_name: str | None = Field(None, max_length=200, json_schema_extra=_TRIMMED,
                                  description="Instead of the campaign's")
    message_id: int | None = Field(None, ge=1, le=MAX_ID, description="Another message (its "
                                   "current version is pinned at start)")


class SplitTest(Strict):
    variants: list[SplitVariant] = Field(min_length=MIN_VARIANTS, max_length=MAX_VARIANTS,
                                         json_schema_extra={"uniqueItems": True},
                                         description="Variant A, B, … (numbered 1, 2, … in replies)")
    test_percent: int = Field(20, ge=1, le=100, description="Share of the audience in the test, "
                              "split evenly and at random between the variants")
    metric: Literal["opens", "clicks", "click_to_open"] = Field(
        "opens", description="Human unique opens or clicks per delivered message, or clicks per open")
    wait_hours: float = Field(4, ge=0, le=MAX_WAIT_HOURS, description="After the start; then the "
                              "winner goes to the rest of the audience")


CLOCK = r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$"


class QuietHours(Strict):
    start: str = Field(pattern=CLOCK, description="Local time the quiet hours begin, HH:MM")
    end: str = Field(pattern=CLOCK, description="Local time they end, HH:MM (before start: "
                     "across midnight)")


class SendAtLocal(Strict):
    time: str = Field(pattern=CLOCK, description="Wall time in each recipient's zone, HH:MM; "
                      "each gets it at the first such time after the start (or at once when it "
                      "passed less than an hour before)")
    fallback_timezone: Timezone | None = Field(None, description="For recipients "
                                          "with neither a timezone nor a known country; "
                                          "default: the campaign's timezone")
    quiet_hours: QuietHours | None = Field(None, description="Local hours in which nothing is "
                                           "sent (retries, resumed or late sends wait); "
                                           "omitted: 21:00–08:00; null: none")


class LocalZone(BaseModel):
    zone: str
    due_at: datetime = Field(description="When its recipients' messages become due")
    recipients: int


class WarmupInfo(BaseModel):
    kind: Literal["domain", "ip"]
    name: str
    day: int = Field(description="Day of the warm-up (1: the first)")
    days: int = Field(description="Days of deliverability.warmup_curve")
    quota: int = Field(description="Messages per mailbox provider today")


class WarmupProvider(BaseModel):
    provider: str = Field(description="gmail, outlook, yahoo, mailru, yandex or other")
    label: str
    held: int
    released_today: int
    quota: int | None


class WarmupHeld(BaseModel):
    held: int = Field(description="Recipients held: over today's warm-up quota")
    warmups: list[WarmupInfo] = Field(description="The warm-ups the campaign's mail counts against")
    providers: list[WarmupProvider]
    next_release: datetime = Field(description="When the next day's quota begins (00:00 UTC)")


class CampaignCreate(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    message_id: int = Id
    lists: list[IdItem] = Field(min_length=1, max_length=1000)
    segments: list[IdItem] = Field(default_factory=list, max_length=1000)
    exclude_lists: list[IdItem] = Field(default_factory=list, max_length=1000)
    exclude_segments: list[IdItem] = Field(default_factory=list, max_length=1000)
    from_email: Email
    from_name: str = Field("", max_length=200)
    reply_to: Email | None = None
    schedule_at: datetime | None = Field(None, description="ISO 8601; without a zone it is wall "
                                         "time in `timezone`")
    timezone: Timezone = "UTC"
    utm: Utm | None = None
    link_utm: dict[LinkNumber, Utm] | None = Field(None, description=(
        "Per link number (0, 1, … in the order of the message's links, as the clickmap numbers "
        "them): UTM overrides; a number the message (or a split-test variant's) lacks is refused"))
    track_opens: bool = True
    track_clicks: bool = True
    archive: bool = Field(False, description="Publish on the public archive of its lists "
                          "(those with an archive_slug) once finished")
    start_now: bool = Field(False, description="Start right away (in addition to any schedule)")
    split_test: SplitTest | None = Field(None, description="An A/B test with an automatic winner")
    send_at_local: SendAtLocal | None = Field(None, description="Local-time delivery: at one "
                                              "wall time in each recipient's time zone")


class CampaignPatch(Strict):
    name: str | None = Field(None, min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    message_id: int | None = Field(None, ge=1, le=MAX_ID)
    lists: list[IdItem] | None = Field(None, min_length=1, max_length=1000)
    segments: list[IdItem] | None = Field(None, max_length=1000)
    exclude_lists: list[IdItem] | None = Field(None, max_length=1000)
    exclude_segments: list[IdItem] | None = Field(None, max_length=1000)
    from_email: Email | None = None
    from_name: str | None = Field(None, max_length=200)
    reply_to: Email | None = None
    schedule_at: datetime | None = None
    timezone: Timezone | None = None
    utm: Utm | None = None
    link_utm: dict[LinkNumber, Utm] | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    archive: bool | None = Field(None, description="Publish on (or take off) the public "
                                 "archive; in any state")
    split_test: SplitTest | None = Field(None, description="null removes the split test")
    send_at_local: SendAtLocal | None = Field(None, description="null: send at once, not in "
                                              "local time")


class Stats(BaseModel):
    total: int
    sent: int
    failed: int
    in_doubt: int
    skipped: int
    cancelled: int
    remaining: int
    held: int = Field(0, description="A split test's rest of the audience, waiting for the winner, "
                      "and what is over a warm-up's quota today")
    held_warmup: int = Field(0, description="Of those, held for a warm-up")
    rate: float = Field(description="Messages per second over the last minute")
    eta_seconds: int | None = Field(None, description="Estimated seconds to finish")
    zones_to_come: list[LocalZone] = Field(default_factory=list, description="Local-time "
                                           "delivery: zones whose recipients are not due yet")


class CampaignOut(BaseModel):
    id: int
    name: str
    state: str
    message_id: int
    version_id: int | None
    lists: list[int]
    segments: list[int]
    exclude_lists: list[int]
    exclude_segments: list[int]
    from_email: str
    from_name: str
    reply_to: str | None
    schedule_at: datetime | None
    timezone: str
    utm: dict[str, str]
    track_opens: bool
    track_clicks: bool
    archive: bool
    pause_reason: str | None
    send_at_local: SendAtLocal | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stats: Stats
    warmup: WarmupHeld | None = Field(None, description="Rows held for a warm-up, and why")


class Created(BaseModel):
    id: int


class VariantFigures(BaseModel):
    variant: int
    letter: str
    subject: str | None
    from_name: str | None
    message_id: int | None
    version_id: int | None = Field(description="Pinned when the campaign starts")
    recipients: int = Field(description="In the test portion")
    delivered: int
    unique_opens: int = Field(description="Human (machine-labelled opens left out)")
    unique_clicks: int = Field(description="Human (machine-labelled clicks left out)")
    open_rate: float
    click_rate: float
    click_to_open: float


class SplitTestOut(BaseModel):
    state: Literal["pending", "testing", "decided"]
    metric: str
    test_percent: int
    wait_hours: float
    decide_at: datetime | None
    winner: int | None
    winner_letter: str | None
    decided_at: datetime | None
    decided_by: str | None
    held: int = Field(description="Recipients waiting for the winner")
    variants: list[VariantFigures]


class WinnerChoice(Strict):
    variant: int | None = Field(None, ge=1, le=MAX_VARIANTS, description="Omit: the best by the "
                                "test's metric so far")


_NOT_CLEARABLE = ("name", "message_id", "lists", "from_email", "from_name", "timezone",
                  "track_opens", "track_clicks")


def _values(body: BaseModel) -> dict:
    data = body.model_dump(exclude_unset=True)
    renames = {"lists": "list_ids", "segments": "segment_ids", "exclude_lists": "exclude_list_ids",
               "exclude_segments": "exclude_segment_ids"}
    # null changes nothing where a value cannot be cleared (as in the other PATCH routes)
    values = {renames.get(k, k): v for k, v in data.items() if k != "start_now"
              and not (v is None and k in _NOT_CLEARABLE)}
    if values.get("split_test"):
        values["split_test"] = {**values["split_test"], "variants": [
            {k: v for k, v in variant.items() if v is not None}
            for variant in values["split_test"]["variants"]]}
    if "utm" in values:
        values["utm"] = {k: v for k, v in (values["utm"] or {}).items() if v}
    if "link_utm" in values:
        values["link_utm"] = {k: {x: y for x, y in v.items() if y}
                              for k, v in (values["link_utm"] or {}).items()}
    return values


def _out(conn, campaign_id: int) -> dict:
    campaign = service.get_campaign(conn, campaign_id)
    return {**campaign, "lists": campaign["list_ids"], "segments": campaign["segment_ids"],
            "exclude_lists": campaign["exclude_list_ids"],
            "exclude_segments": campaign["exclude_segment_ids"],
            "stats": service.progress(conn, campaign_id),
            "warmup": service.warmup_holds(conn, campaign_id)}


@operation("/campaigns", "GET", lists=True, permission="campaigns:read", summary="List campaigns", tag=TAG,
           response=list[CampaignOut])
def list_campaigns():
    with db.read(db.get_engine()) as conn:
        return [_out(conn, c["id"]) for c in service.list_campaigns(conn, only=scope.only(g.actor))]


@operation("/campaigns", "POST", lists=True, permission="campaigns:write", summary="Create a campaign",
           tag=TAG, body=CampaignCreate, response=Created, status=201)
def create_campaign(body: CampaignCreate):
    if (body.start_now or body.schedule_at is not None) and not g.actor.can("campaigns:send"):
        raise Forbidden("starting or scheduling a campaign needs the campaigns:send permission")
    with db.write(db.get_engine()) as conn:
        campaign_id = service.create_campaign(conn, g.actor, **_values(body))
    actions.after_create(g.actor, campaign_id, start_now=body.start_now,
                         scheduled=body.schedule_at is not None)
    return {"id": campaign_id}


@operation("/campaigns/<int:campaign_id>", "GET", lists=True, permission="campaigns:read",
           summary="A campaign with its live progress", tag=TAG, response=CampaignOut)
def get_campaign(campaign_id: int):
    with db.read(db.get_engine()) as conn:
        return _out(conn, campaign_id)


@operation("/campaigns/<int:campaign_id>", "PATCH", lists=True, permission="campaigns:write",
           summary="Change a draft or scheduled campaign (archive: in any state)", tag=TAG,
           body=CampaignPatch,
           response=CampaignOut)
def patch_campaign(campaign_id: int, body: CampaignPatch):
    with db.write(db.get_engine()) as conn:
        service.update_campaign(conn, g.actor, campaign_id, **_values(body))
        return _out(conn, campaign_id)


def _action(name: str):
    def view(campaign_id: int):
        actions.perform(g.actor, current_settings(), campaign_id, name)
        with db.read(db.get_engine()) as conn:
            return _out(conn, campaign_id)
    view.__name__ = f"{name}_campaign"
    return view


for _name, _summary in (("start", "Start now"), ("schedule", "Schedule for its schedule_at"),
                        ("pause", "Pause sending"), ("resume", "Resume sending"),
                        ("cancel", "Cancel (unsent messages are never sent)")):
    operation(f"/campaigns/<int:campaign_id>/{_name}", "POST", permission="campaigns:send", lists=True,
              summary=_summary, tag=TAG, response=CampaignOut)(_action(_name))


@operation("/campaigns/<int:campaign_id>/split-test", "GET", lists=True, permission="campaigns:read",
           summary="The split test: variants with their figures, state, winner", tag=TAG,
           response=SplitTestOut)
def get_split_test(campaign_id: int):
    with db.read(db.get_engine()) as conn:
        service.get_campaign(conn, campaign_id)
        found = splittest.overview(conn, campaign_id)
    if found is None:
        raise NotFound("campaign %(campaign_id)s has no split test", campaign_id=campaign_id)
    return found


@operation("/campaigns/<int:campaign_id>/split-test/winner", "POST", lists=True, permission="campaigns:send",
           summary="Pick the winner now (a variant, or the best so far); the rest get it", tag=TAG,
           body=WinnerChoice, response=SplitTestOut)
def choose_winner(campaign_id: int, body: WinnerChoice):
    actions.choose_winner(g.actor, campaign_id, body.variant)
    with db.read(db.get_engine()) as conn:
        return splittest.overview(conn, campaign_id)


class BreakerFigures(BaseModel):
    blocked: int = Field(description="Messages refused, deferred or reported as spam")
    messages: int = Field(description="Of the campaign's latest messages to the provider")
    percent: float
    limit: float = Field(description="inbound.breaker_percent when it tripped")


class BreakerOut(BaseModel):
    provider: Literal["gmail", "outlook", "yahoo", "mailru", "yandex", "other"]
    state: Literal["open", "closed"] = Field(description="open: nothing is sent to the provider")
    reason: str
    campaign_id: int | None = Field(description="The campaign whose figures tripped it")
    figures: BreakerFigures | None
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None


@operation("/breakers", "GET", permission="campaigns:read", tag=TAG, response=list[BreakerOut],
           summary="Circuit breakers of mailbox providers that ever tripped (open ones first)")
def list_breakers():
    with db.read(db.get_engine()) as conn:
        return breakers.list_all(conn)


@operation("/breakers/<provider>/resume", "POST", permission="campaigns:send", tag=TAG,
           response=BreakerOut, summary="Resume sending to a provider whose circuit breaker is "
           "open (its waiting recipients are due at once)")
def resume_breaker(provider: str):
    actions.resume_provider(g.actor, provider)
    with db.read(db.get_engine()) as conn:
        return breakers.get(conn, provider)
