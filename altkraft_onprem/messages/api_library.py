"""REST routes: saved templates and the media library (messages and versions: api.py; app.py
imports both)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, g, request
from pydantic import BaseModel, Field

from altkraft_onprem import db
from altkraft_onprem.api import NON_BLANK, ONE_LINE, operation
from altkraft_onprem.config import current_settings as settings
from altkraft_onprem.errors import ServiceError

from . import media as library
from . import service
from .api import TAG_MEDIA, TAG_TEMPLATES, Saved, Strict, _saved
from .models import MAX_HTML, MAX_NAME, MAX_PREHEADER, MAX_SUBJECT


class TemplateIn(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=MAX_NAME)
    html: str = Field(max_length=MAX_HTML)
    subject: str = Field("", max_length=MAX_SUBJECT, json_schema_extra=ONE_LINE)
    preheader: str = Field("", max_length=MAX_PREHEADER)
    description: str = Field("", max_length=2000)
    editor_state: dict[str, Any] | str | None = None


class TemplatePatch(Strict):
    name: str | None = Field(None, min_length=1, json_schema_extra=NON_BLANK, max_length=MAX_NAME)
    html: str | None = Field(None, max_length=MAX_HTML)
    subject: str | None = Field(None, max_length=MAX_SUBJECT, json_schema_extra=ONE_LINE)
    preheader: str | None = Field(None, max_length=MAX_PREHEADER)
    description: str | None = Field(None, max_length=2000)
    editor_state: dict[str, Any] | str | None = None


class TemplateOut(BaseModel):
    id: int
    name: str
    description: str
    subject: str
    preheader: str
    html: str
    editor_state: str | None
    builtin: bool
    created_at: datetime
    updated_at: datetime


class FromTemplate(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=MAX_NAME)


class MediaOut(BaseModel):
    id: int
    name: str
    url: str
    content_type: str
    width: int | None
    height: int | None
    size: int
    created_at: datetime
    created_by: str
    note: str | None = Field(None, description="Upload only: what was done differently (e.g. an "
                                               "animation too large to resize was kept as it is)")


class MediaForm(Strict):
    pass


# --- templates -------------------------------------------------------------------------------

@operation("/templates", "GET", permission="messages:read", summary="Saved templates (built-in first)",
           tag=TAG_TEMPLATES, response=list[TemplateOut])
def list_templates():
    with db.read(db.get_engine()) as conn:
        return service.list_templates(conn)


@operation("/templates", "POST", permission="messages:write", summary="Save a template",
           tag=TAG_TEMPLATES, body=TemplateIn, response=TemplateOut, status=201)
def create_template(body: TemplateIn):
    with db.write(db.get_engine()) as conn:
        template_id = service.create_template(conn, g.actor, **body.model_dump())
        return service.get_template(conn, template_id)


@operation("/templates/<int:template_id>", "GET", permission="messages:read", summary="One template",
           tag=TAG_TEMPLATES, response=TemplateOut)
def get_template(template_id: int):
    with db.read(db.get_engine()) as conn:
        return service.get_template(conn, template_id)


@operation("/templates/<int:template_id>", "PATCH", permission="messages:write",
           summary="Change a saved template", tag=TAG_TEMPLATES, body=TemplatePatch, response=TemplateOut)
def patch_template(template_id: int, body: TemplatePatch):
    with db.write(db.get_engine()) as conn:
        service.update_template(conn, g.actor, template_id, **body.model_dump(exclude_unset=True))
        return service.get_template(conn, template_id)


@operation("/templates/<int:template_id>", "DELETE", permission="messages:write",
           summary="Delete a saved template", tag=TAG_TEMPLATES, status=204)
def delete_template(template_id: int):
    with db.write(db.get_engine()) as conn:
        service.delete_template(conn, g.actor, template_id)
    return Response(status=204)


@operation("/templates/<int:template_id>/messages", "POST", permission="messages:write",
           summary="Start a new message from a template", tag=TAG_TEMPLATES, body=FromTemplate,
           response=Saved, status=201)
def message_from_template(template_id: int, body: FromTemplate):
    with db.write(db.get_engine()) as conn:
        message_id, version = service.message_from_template(conn, g.actor, template_id, body.name)
        return _saved(conn, message_id, version)


# --- media -----------------------------------------------------------------------------------

@operation("/media", "GET", permission="messages:read", summary="The media library, newest first",
           tag=TAG_MEDIA, response=list[MediaOut])
def list_media():
    with db.read(db.get_engine()) as conn:
        return library.list_media(conn, settings())


@operation("/media", "POST", permission="messages:write",
           summary="Upload an image (PNG, JPEG, GIF, WebP, SVG) as multipart field `file`",
           tag=TAG_MEDIA, multipart=MediaForm, response=MediaOut, status=201,
           file_types="image/png, image/jpeg, image/gif, image/webp, image/svg+xml")
def upload_media(form: MediaForm):
    upload = request.files.get("file")
    if upload is None:
        raise ServiceError("send the image as the multipart field `file`", "file")
    data = upload.read(settings()["messages.upload_max_mb"] * 1024 * 1024 + 1)
    with db.write(db.get_engine()) as conn:
        return library.add_media(conn, settings(), g.actor, upload.filename or "image", data)


@operation("/media/<int:media_id>", "DELETE", permission="messages:write",
           summary="Remove an image from the library", tag=TAG_MEDIA, status=204)
def delete_media(media_id: int):
    with db.write(db.get_engine()) as conn:
        library.delete_media(conn, settings(), g.actor, media_id)
    return Response(status=204)
