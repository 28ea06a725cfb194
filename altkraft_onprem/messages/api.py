"""REST routes: messages and their versions, preview, send-test, templates, media library."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Response, g
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import (
    HTTP_URL_PATTERN,
    MAX_ID,
    NON_BLANK,
    ONE_LINE,
    Email,
    operation,
    problem,
)
from altkraft_onprem.config import current_settings as settings

from . import preview, service
from .models import MAX_HTML, MAX_NAME, MAX_PREHEADER, MAX_SUBJECT
from .render import TemplateProblem, text_from_html_template

TAG, TAG_TEMPLATES, TAG_MEDIA = "Messages", "Templates", "Media"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _needs(kind: str, key: str, schema: dict) -> dict:
    return {"required": ["kind", key], "properties": {"kind": {"const": kind}, key: schema}}


class DataSource(Strict):
    # What each kind needs (models.clean_data_source checks it and names the field).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"properties": {"kind": {"const": "none"}}},
        _needs("document", "document", {"type": "object"}),
        _needs("url", "url", {"type": "string", "pattern": HTTP_URL_PATTERN}),
        _needs("per_subscriber", "url_template", {"type": "string", "pattern": HTTP_URL_PATTERN}),
    ]})
    kind: Literal["none", "document", "url", "per_subscriber"] = "none"
    document: dict[str, Any] | str | None = Field(None, description="Pasted JSON (kind=document)")
    url: str | None = Field(None, max_length=2000, description="Fetched once at send start (kind=url)")
    url_template: str | None = Field(None, max_length=2000,
                                     description="Per subscriber, e.g. https://api/recs?id={{ subscriber.id }}")


class MessageCreate(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=MAX_NAME)
    subject: str = Field(min_length=1, json_schema_extra=NON_BLANK | ONE_LINE, max_length=MAX_SUBJECT)
    preheader: str = Field("", max_length=MAX_PREHEADER)
    html: str = Field("", max_length=MAX_HTML, description="A template: it is saved as it is; "
                      "preview, send-test and start refuse one that does not render")
    text: str | None = Field(None, max_length=MAX_HTML,
                             description="Omit to generate it from the HTML (and keep following it)")
    text_follows_html: bool | None = None
    editor: Literal["visual", "code"] = "code"
    editor_state: dict[str, Any] | str | None = Field(None, description="GrapesJS project data")
    data_source: DataSource | None = None


class MessageUpdate(Strict):
    name: str | None = Field(None, min_length=1, json_schema_extra=NON_BLANK, max_length=MAX_NAME)
    subject: str | None = Field(None, min_length=1, json_schema_extra=NON_BLANK | ONE_LINE,
                                max_length=MAX_SUBJECT)
    preheader: str | None = Field(None, max_length=MAX_PREHEADER)
    html: str | None = Field(None, max_length=MAX_HTML)
    text: str | None = Field(None, max_length=MAX_HTML)
    text_follows_html: bool | None = None
    editor: Literal["visual", "code"] | None = None
    editor_state: dict[str, Any] | str | None = None
    data_source: DataSource | None = None


class Saved(BaseModel):
    id: int
    version: int
    problems: list[dict] = Field(default_factory=list,
                                 description="Template problems (part, line, message); saving still works")


class MessageOut(BaseModel):
    id: int
    name: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    subject: str
    archived_at: datetime | None = None


class MessageQuery(Strict):
    search: str | None = Field(None, max_length=200, description="In the name or the current subject")
    archived: bool = Field(False, description="List the archived (deleted) messages instead")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


class VersionSummary(BaseModel):
    id: int
    version: int
    subject: str
    created_at: datetime
    created_by: str
    summary: str
    editor: str


class VersionOut(VersionSummary):
    message_id: int
    preheader: str
    html: str
    text: str
    text_follows_html: bool
    editor_state: str | None
    data_source: dict[str, Any] | None


class Compare(BaseModel):
    from_version: int
    to_version: int
    summary: str
    diffs: dict[str, list[str]]


class CompareQuery(Strict):
    from_version: int = Field(ge=1, le=MAX_ID)
    to_version: int = Field(ge=1, le=MAX_ID)


class PreviewIn(Strict):
    subscriber_id: int | None = Field(None, ge=1, le=MAX_ID)
    email: Email | None = None
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Default: the current version")
    draft: MessageUpdate | None = Field(None, description="Unsaved editor content to render instead")
    event: dict[str, Any] | None = Field(None, description="A sample triggering event, as a "
                                         "workflow's message sees it: {{ event.order_id }}")


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str


class SendTestIn(Strict):
    recipients: list[Email] = Field(min_length=1, max_length=preview.MAX_TEST_RECIPIENTS)
    from_email: Email
    from_name: str = Field("", max_length=200)
    subscriber_id: int | None = Field(None, ge=1, le=MAX_ID)
    version: int | None = Field(None, ge=1, le=MAX_ID)


class SendTestResult(BaseModel):
    email: str
    sent: bool
    message_id: str | None
    error: str | None


class TextIn(Strict):
    html: str = Field(max_length=MAX_HTML)


class TextOut(BaseModel):
    text: str


class CheckOut(BaseModel):
    problems: list[dict]


def _content(body: BaseModel) -> dict[str, Any]:
    values = body.model_dump(exclude={"name"}, exclude_unset=True)
    if body.data_source is not None:
        values["data_source"] = body.data_source.model_dump(exclude_none=True)
    return values


def _saved(conn, message_id: int, version: int) -> dict:
    return {"id": message_id, "version": version,
            "problems": service.problems(service.get_version(conn, message_id, version))}


@operation("/messages", "GET", permission="messages:read",
           summary="List messages, newest saves first (search by name or subject; archived apart)",
           tag=TAG, query=MessageQuery, response=list[MessageOut])
def list_messages(query: MessageQuery):
    with db.read(db.get_engine()) as conn:
        rows, _total = service.browse_messages(conn, query.search, archived=query.archived,
                                               limit=query.limit, offset=query.offset)
        return rows


@operation("/messages/<int:message_id>", "DELETE", permission="messages:write",
           summary="Delete (archive) a message no campaign uses; 409 names the campaigns that do",
           tag=TAG, status=204)
def archive_message(message_id: int):
    with db.write(db.get_engine()) as conn:
        service.archive_message(conn, g.actor, message_id)
    return Response(status=204)


@operation("/messages/<int:message_id>/unarchive", "POST", permission="messages:write",
           summary="Bring an archived message back into the list", tag=TAG, status=204)
def unarchive_message(message_id: int):
    with db.write(db.get_engine()) as conn:
        service.unarchive_message(conn, g.actor, message_id)
    return Response(status=204)


@operation("/messages", "POST", permission="messages:write", summary="Create a message (version 1)",
           tag=TAG, body=MessageCreate, response=Saved, status=201)
def create_message(body: MessageCreate):
    with db.write(db.get_engine()) as conn:
        message_id, version = service.create_message(conn, g.actor, body.name, **_content(body))
        return _saved(conn, message_id, version)


@operation("/messages/<int:message_id>", "GET", permission="messages:read",
           summary="A message's current version", tag=TAG, response=VersionOut)
def get_message(message_id: int):
    with db.read(db.get_engine()) as conn:
        return service.get_version(conn, message_id)


@operation("/messages/<int:message_id>", "PUT", permission="messages:write",
           summary="Save a new version (omitted fields keep their values)", tag=TAG,
           body=MessageUpdate, response=Saved)
def update_message(message_id: int, body: MessageUpdate):
    with db.write(db.get_engine()) as conn:
        version = service.save_version(conn, g.actor, message_id, name=body.name, **_content(body))
        return _saved(conn, message_id, version)


@operation("/messages/<int:message_id>/versions", "GET", permission="messages:read",
           summary="Every version, newest first (who, when, what changed)", tag=TAG,
           response=list[VersionSummary])
def list_versions(message_id: int):
    with db.read(db.get_engine()) as conn:
        return service.list_versions(conn, message_id)


@operation("/messages/<int:message_id>/versions/<int:version>", "GET", permission="messages:read",
           summary="One version", tag=TAG, response=VersionOut)
def get_version(message_id: int, version: int):
    with db.read(db.get_engine()) as conn:
        return service.get_version(conn, message_id, version)


@operation("/messages/<int:message_id>/versions/<int:version>/restore", "POST",
           permission="messages:write", summary="Save a copy of an old version as the newest",
           tag=TAG, response=Saved)
def restore_version(message_id: int, version: int):
    with db.write(db.get_engine()) as conn:
        number = service.restore_version(conn, g.actor, message_id, version)
        return _saved(conn, message_id, number)


@operation("/messages/<int:message_id>/compare", "GET", permission="messages:read",
           summary="Unified diffs between two versions", tag=TAG, query=CompareQuery, response=Compare)
def compare(message_id: int, query: CompareQuery):
    with db.read(db.get_engine()) as conn:
        return service.compare_versions(conn, message_id, query.from_version, query.to_version)


def template_problem(exc: TemplateProblem) -> Response:
    return problem(422, "Template error", str(exc), line=exc.line, message=exc.message,
                   part=exc.part, errors=[{"field": exc.part, "message": str(exc)}])


@operation("/messages/<int:message_id>/preview", "POST", permission="messages:read",
           summary="Render for a subscriber (id or email) or sample data; 422 names the line",
           tag=TAG, body=PreviewIn, response=PreviewOut)
def preview_message(message_id: int, body: PreviewIn):
    draft = _content(body.draft) if body.draft is not None else None
    with db.read(db.get_engine()) as conn:
        try:
            rendered = preview.render_preview(conn, settings(), message_id, body.version,
                                              body.subscriber_id, body.email, draft,
                                              event=body.event)
        except TemplateProblem as exc:
            return template_problem(exc)
    return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}


@operation("/messages/<int:message_id>/send-test", "POST", permission="campaigns:send",
           summary="Send the rendered message to test addresses through the relay", tag=TAG,
           body=SendTestIn, response=list[SendTestResult])
def send_test(message_id: int, body: SendTestIn):
    with db.write(db.get_engine()) as conn:
        return preview.send_test(conn, settings(), g.actor, message_id, body.recipients,
                                 from_email=body.from_email, from_name=body.from_name,
                                 subscriber_id=body.subscriber_id, version=body.version)


@operation("/messages/text-version", "POST", permission="messages:write",
           summary="Plain text generated from HTML (variables kept; links as `text [url]`)",
           tag=TAG, body=TextIn, response=TextOut)
def text_version(body: TextIn):
    return {"text": text_from_html_template(body.html)}


@operation("/messages/check", "POST", permission="messages:write",
           summary="Template problems of unsaved content (syntax errors, unknown variables)",
           tag=TAG, body=MessageUpdate, response=CheckOut)
def check(body: MessageUpdate):
    content = body.model_dump(exclude_unset=True)
    return {"problems": service.problems(content)}

