"""REST routes: lists, subscribers, custom fields, segments, trash, suppressions, GDPR."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from flask import Response, g
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    model_validator,
)

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.api import MAX_ID, NON_BLANK, Email, exactly_one, operation, zone_enum
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import NotFound

from . import fields as field_service
from . import gdpr, lists, optin, rules, segments, subscribers, trash
from . import optin as optin_defaults
from .jobs import send_confirmation

TAG_LISTS, TAG_SUBS, TAG_FIELDS = "Lists", "Subscribers", "Custom fields"
TAG_SEGMENTS, TAG_TRASH, TAG_SUPP = "Segments", "Trash", "Suppressions"
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Status = Literal["unconfirmed", "confirmed", "unsubscribed"]
Short = Annotated[str, Field(max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- lists ----------------------------------------------------------------------------------

class Counts(BaseModel):
    confirmed: int
    unconfirmed: int
    unsubscribed: int


class ListOut(BaseModel):
    id: int
    name: str
    description: str
    visibility: Literal["public", "private"]
    optin: Literal["single", "double"]
    tags: list[str]
    form: dict[str, Any]
    archive_slug: str | None = Field(description="Its public archive is /archive/{archive_slug} "
                                     "(and feed.atom there); null: none")
    counts: Counts
    created_at: datetime
    updated_at: datetime


class ListCreate(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    optin: Literal["single", "double"] | None = Field(
        None, description="Default: audience.default_optin (the Settings page)")
    visibility: Literal["public", "private"] = "private"
    tags: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list, max_length=50)
    description: str = Field("", max_length=5000)


class FormSettings(Strict):
    fields: list[Literal["first_name", "last_name", "phone", "gender", "birth_date", "company",
                         "city", "region", "country", "language", "timezone"]] = Field(
        default_factory=lambda: ["first_name"], description="Optional fields on the hosted form")
    title: str = Field("", max_length=200)
    confirm_subject: str = Field(optin_defaults.DEFAULT_SUBJECT, max_length=300)
    confirm_html: str = Field(optin_defaults.DEFAULT_HTML, max_length=50_000,
                              description="Placeholders {{ confirm_url }}, {{ list_name }}, "
                                          "{{ first_name }}")
    confirm_text: str = Field(optin_defaults.DEFAULT_TEXT, max_length=50_000)
    from_email: str = Field("", max_length=320)
    from_name: str = Field("", max_length=200)


class ListPatch(Strict):
    name: str | None = Field(None, min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    optin: Literal["single", "double"] | None = None
    visibility: Literal["public", "private"] | None = None
    tags: list[Annotated[str, Field(max_length=50)]] | None = Field(None, max_length=50)
    description: str | None = Field(None, max_length=5000)
    form: FormSettings | None = Field(None, description="Hosted form and confirmation email")
    archive_slug: str | None = Field(None, max_length=64, json_schema_extra={
                                     "pattern": r"^$|^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"},
                                     description="The public archive's "
                                     "address (lower-case letters, digits, dashes): "
                                     "/archive/{archive_slug}; null or \"\" takes it down")


@operation("/lists", "GET", lists=True, permission="lists:read", summary="All lists with live counts",
           tag=TAG_LISTS, response=list[ListOut])
def list_lists():
    with db.read(db.get_engine()) as conn:
        return lists.list_lists(conn, only=scope.only(g.actor))


@operation("/lists", "POST", permission="lists:write", summary="Create a list", tag=TAG_LISTS,
           body=ListCreate, response=ListOut, status=201)
def create_list(body: ListCreate):
    with db.write(db.get_engine()) as conn:
        list_id = lists.create_list(conn, g.actor, body.name,
                                    optin=body.optin or current_settings()["audience.default_optin"],
                                    visibility=body.visibility, tags=body.tags,
                                    description=body.description)
        return lists.get_list(conn, list_id)


@operation("/lists/<int:list_id>", "GET", lists=True, permission="lists:read", summary="One list",
           tag=TAG_LISTS, response=ListOut)
def get_list(list_id: int):
    with db.read(db.get_engine()) as conn:
        return lists.get_list(conn, list_id)


@operation("/lists/<int:list_id>", "PATCH", lists=True, permission="lists:write", summary="Change a list",
           tag=TAG_LISTS, body=ListPatch, response=ListOut)
def patch_list(list_id: int, body: ListPatch):
    with db.write(db.get_engine()) as conn:
        changes = body.model_dump(exclude_none=True)
        if "archive_slug" in body.model_fields_set:     # null is a value here: no archive
            changes["archive_slug"] = body.archive_slug
        if body.form is not None and not changes["form"]["title"]:
            changes["form"]["title"] = body.name or lists.get_list(conn, list_id, counts=False)["name"]
        lists.update_list(conn, g.actor, list_id, **changes)
        return lists.get_list(conn, list_id)


@operation("/lists/<int:list_id>", "DELETE", lists=True, permission="lists:write",
           summary="Delete a list (its members stay subscribers)", tag=TAG_LISTS, status=204)
def delete_list(list_id: int):
    with db.write(db.get_engine()) as conn:
        lists.delete_list(conn, g.actor, list_id)
    return Response(status=204)


# --- subscribers ----------------------------------------------------------------------------

class MembershipOut(BaseModel):
    list_id: int
    name: str
    status: Status
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class SubscriberOut(BaseModel):
    id: int
    email: str
    state: Literal["active", "suppressed", "bounced", "complained"]
    first_name: str | None
    last_name: str | None
    phone: str | None
    gender: str | None
    birth_date: date | None
    company: str | None
    city: str | None
    region: str | None
    country: str | None
    language: str | None
    timezone: str | None
    fields: dict[str, Any]
    lists: list[MembershipOut]
    source: str
    created_at: datetime
    updated_at: datetime


def _value(*accepted: dict, description: str = "") -> Any:
    """A standard field: the service (rules.clean_standard) reads text or numbers and says what
    is wrong with a value; the document promises what it accepts."""
    schema: dict[str, Any] = {"anyOf": [*accepted, {"type": "null"}], "default": None}
    if description:
        schema["description"] = description
    return Annotated[str | StrictInt | StrictFloat | None, WithJsonSchema(schema)]


_TEXT = ({"type": "string", "maxLength": rules.TEXT_MAX},
         {"type": "integer", "minimum": -10**15, "maximum": 10**15}, {"type": "number"})
Text = _value(*_TEXT)


class SubscriberFields(Strict):
    first_name: Text = None
    last_name: Text = None
    phone: _value({"type": "string", "pattern": r"^\+?[1-9][0-9]{4,19}$"},
                  description="Digits with an optional +; spaces, dashes, dots and brackets "
                              "are dropped, a leading 00 becomes +") = None
    gender: _value({"enum": list(rules.GENDERS)}, description="Also ж/м and other words") = None
    birth_date: _value({"type": "string", "format": "date", "pattern": r"^(19[0-9]{2}|20[01][0-9])-"},
                       description="YYYY-MM-DD (also DD.MM.YYYY), from 1900-01-01 to today") = None
    company: Text = None
    city: Text = None
    region: Text = None
    country: _value({"enum": sorted(rules.countries())},
                    description="ISO 3166 code (an English country name is also understood)") = None
    language: _value({"type": "string", "pattern": r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"},
                     description="A language tag, e.g. en or pt-BR") = None
    timezone: Annotated[_value({}, description="IANA, e.g. Europe/Moscow"),
                        Field(json_schema_extra=zone_enum)] = None
    fields: dict[Annotated[str, Field(max_length=63)], Any] = Field(
        default_factory=dict, description="Custom fields by key")


class SubscriberCreate(SubscriberFields):
    email: Email
    lists: list[Id] = Field(default_factory=list, max_length=1000)
    status: Status = "confirmed"


class SubscriberPatch(SubscriberFields):
    email: Email | None = None
    state: Literal["active", "suppressed", "bounced", "complained"] | None = None
    lists: dict[Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$")], Status | None] = Field(
        default_factory=dict, description='{"<list id>": status, or null to remove}')


class SubscriberQuery(Strict):
    email: str | None = Field(None, max_length=320)
    search: str | None = Field(None, max_length=200)
    list_id: Id | None = Field(None, alias="list")
    status: Status | None = None
    segment: Id | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


def _referenced(getter, conn, item_id: int, field: str):
    """A thing named in a body or query: missing is a 404 naming that field (docs/api.md)."""
    try:
        return getter(conn, item_id)
    except NotFound as exc:
        raise NotFound.like(exc, field) from None


def _segment_where(conn, segment_id: int):
    return segments.matching(conn, _referenced(segments.get_segment, conn, segment_id,
                                               "segment")["conditions"])


def _out(item: dict) -> dict:
    item = dict(item)
    item["fields"] = item.pop("custom", {}) or {}
    return item


def _data(body: SubscriberFields) -> dict:
    data = body.model_dump(exclude_unset=True, exclude={"lists", "status", "state", "fields"})
    if body.fields:
        data["custom"] = body.fields
    return data


@operation("/subscribers", "GET", lists=True, permission="lists:read",
           summary="Find subscribers (by exact email, search text, list, segment)",
           tag=TAG_SUBS, query=SubscriberQuery, response=list[SubscriberOut])
def find_subscribers(query: SubscriberQuery):
    with db.read(db.get_engine()) as conn:
        if query.email is not None:
            found = subscribers.find_by_email(conn, query.email)
            visible = found and scope.allows(g.actor, *lists.lists_of_subscriber(conn, found["id"]))
            return [_out(found)] if visible else []
        where = _segment_where(conn, query.segment) if query.segment else None
        rows, _ = subscribers.browse(conn, limit=query.limit, offset=query.offset,
                                     search=query.search or "", list_id=query.list_id,
                                     status=query.status, segment=where, only=scope.only(g.actor))
        return [_out(subscribers.get_subscriber(conn, r["id"])) for r in rows]


@operation("/subscribers", "POST", lists=True, permission="lists:write", summary="Add one subscriber",
           tag=TAG_SUBS, body=SubscriberCreate, response=SubscriberOut, status=201)
def create_subscriber(body: SubscriberCreate):
    with db.write(db.get_engine()) as conn:
        subscriber_id = subscribers.create_subscriber(conn, g.actor, _data(body), list_ids=body.lists,
                                                      status=body.status, source="api")
        return _out(subscribers.get_subscriber(conn, subscriber_id))


@operation("/subscribers/<int:subscriber_id>", "GET", lists=True, permission="lists:read",
           summary="One subscriber", tag=TAG_SUBS, response=SubscriberOut)
def get_subscriber(subscriber_id: int):
    with db.read(db.get_engine()) as conn:
        return _out(subscribers.get_subscriber(conn, subscriber_id))


@operation("/subscribers/<int:subscriber_id>", "PATCH", lists=True, permission="lists:write",
           summary="Change fields, state or list memberships", tag=TAG_SUBS,
           body=SubscriberPatch, response=SubscriberOut)
def patch_subscriber(subscriber_id: int, body: SubscriberPatch):
    with db.write(db.get_engine()) as conn:
        subscribers.update_subscriber(conn, g.actor, subscriber_id, _data(body))
        if body.state is not None:
            subscribers.set_state(conn, g.actor, subscriber_id, body.state)
        for list_id, status in body.lists.items():
            if status is None:
                subscribers.change_memberships(conn, g.actor, subscriber_id, remove=[int(list_id)])
            else:
                subscribers.change_memberships(conn, g.actor, subscriber_id, add=[int(list_id)],
                                               status=status)
        return _out(subscribers.get_subscriber(conn, subscriber_id))


class DeleteResult(BaseModel):
    batch: int
    count: int


@operation("/subscribers/<int:subscriber_id>", "DELETE", lists=True, permission="subscribers:delete",
           summary="Move a subscriber to the trash", tag=TAG_SUBS, response=DeleteResult)
def delete_subscriber(subscriber_id: int):
    with db.write(db.get_engine()) as conn:
        subscribers.get_subscriber(conn, subscriber_id)
        return trash.delete_to_trash(conn, g.actor, ids=[subscriber_id],
                                     description=f"subscriber {subscriber_id} (API)")


class BulkDelete(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("ids", "list", "segment"))

    ids: list[Id] | None = Field(None, min_length=1, max_length=100_000)
    list_id: Id | None = Field(None, alias="list", description="Every member of this list")
    segment: Id | None = Field(None, description="Everyone matching this saved segment")

    @model_validator(mode="after")
    def one_target(self):
        if sum(x is not None for x in (self.ids, self.list_id, self.segment)) != 1:
            raise ValueError("give exactly one of ids, list, segment")
        return self


@operation("/subscribers/delete", "POST", permission="subscribers:delete",
           summary="Move a selection, a list's members or a segment's matches to the trash",
           tag=TAG_SUBS, body=BulkDelete, response=DeleteResult)
def bulk_delete(body: BulkDelete):
    with db.write(db.get_engine()) as conn:
        if body.segment is not None:
            segment = _referenced(segments.get_segment, conn, body.segment, "segment")
            return trash.delete_to_trash(conn, g.actor, where=segments.matching(
                conn, segment["conditions"]), description=f"segment {segment['name']}")
        if body.list_id is not None:
            found = _referenced(lists.get_list, conn, body.list_id, "list")
            return trash.delete_to_trash(conn, g.actor, list_id=body.list_id,
                                         description=f"members of {found['name']}")
        return trash.delete_to_trash(conn, g.actor, ids=body.ids,
                                     description=f"{len(body.ids)} selected (API)")


@operation("/subscribers/<int:subscriber_id>/export", "GET", lists=True, permission="subscribers:export",
           summary="Everything stored about one person (GDPR access)", tag=TAG_SUBS,
           response=dict[str, Any])
def export_subscriber(subscriber_id: int):
    with db.read(db.get_engine()) as conn:
        return gdpr.export_person(conn, subscriber_id)


@operation("/subscribers/<int:subscriber_id>/erase", "POST", lists=True, permission="subscribers:delete",
           summary="Erase one person now, with history (GDPR erasure; not restorable)",
           tag=TAG_SUBS, status=204)
def erase_subscriber(subscriber_id: int):
    with db.write(db.get_engine()) as conn:
        gdpr.erase_person(conn, g.actor, subscriber_id)
    return Response(status=204)


class ResendBody(Strict):
    list: Id = Field(description="The list whose membership is unconfirmed")


@operation("/subscribers/<int:subscriber_id>/resend-confirmation", "POST",
           lists=True, permission="lists:write", summary="Send the double opt-in email again", tag=TAG_SUBS,
           body=ResendBody, status=202)
def resend_confirmation(subscriber_id: int, body: ResendBody):
    with db.write(db.get_engine()) as conn:
        optin.resend(conn, g.actor, subscriber_id, body.list)
    send_confirmation(subscriber_id, body.list)
    return Response(status=202)


# --- custom fields --------------------------------------------------------------------------

class FieldOut(BaseModel):
    id: int
    key: str
    label: str
    type: str
    choices: list[str]
    created_at: datetime


Choice = Annotated[str, Field(max_length=200, json_schema_extra=NON_BLANK)]


class FieldCreate(Strict):
    # A choice field needs at least one choice.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"type": {"not": {"const": "choice"}}}},
        {"required": ["choices"], "properties": {"choices": {"minItems": 1}}}]})

    key: str = Field(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_]*$")
    label: str = Field("", max_length=200)
    type: Literal["text", "number", "date", "datetime", "boolean", "choice", "json"] = "text"
    choices: list[Choice] = Field(default_factory=list, max_length=500)


class FieldPatch(Strict):
    label: str | None = Field(None, max_length=200)
    choices: list[Choice] | None = Field(None, max_length=500, json_schema_extra={"minItems": 1},
                                         description="A choice field's choices (at least one)")


@operation("/fields", "GET", permission="lists:read", summary="Custom field definitions",
           tag=TAG_FIELDS, response=list[FieldOut])
def list_fields():
    with db.read(db.get_engine()) as conn:
        return field_service.list_fields(conn)


@operation("/fields", "POST", permission="lists:write", summary="Define a custom field",
           tag=TAG_FIELDS, body=FieldCreate, response=FieldOut, status=201)
def create_field(body: FieldCreate):
    with db.write(db.get_engine()) as conn:
        field_id = field_service.create_field(conn, g.actor, body.key, body.label, body.type,
                                              body.choices)
        return field_service.get_field(conn, field_id)


@operation("/fields/<int:field_id>", "PATCH", permission="lists:write",
           summary="Change a custom field's label or choices", tag=TAG_FIELDS, body=FieldPatch,
           response=FieldOut)
def patch_field(field_id: int, body: FieldPatch):
    with db.write(db.get_engine()) as conn:
        field_service.update_field(conn, g.actor, field_id, label=body.label, choices=body.choices)
        return field_service.get_field(conn, field_id)


@operation("/fields/<int:field_id>", "DELETE", permission="lists:write",
           summary="Delete a custom field definition", tag=TAG_FIELDS, status=204)
def delete_field(field_id: int):
    with db.write(db.get_engine()) as conn:
        field_service.delete_field(conn, g.actor, field_id)
    return Response(status=204)
