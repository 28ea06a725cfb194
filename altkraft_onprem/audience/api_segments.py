"""REST routes: saved segments and live counts."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, g
from pydantic import BaseModel, Field

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.api import NON_BLANK, operation

from . import segments
from .api import TAG_SEGMENTS, Strict

CONDITIONS_DOC = ('{"op": "and"|"or", "rules": [{"field": "country"|"custom.KEY", "operator": '
                  '"eq", "value": …} | {"list": ID, "operator": "member"|"not_member", "status": '
                  '"confirmed"|"unconfirmed"|"unsubscribed"|"any"} | nested group]}')


class SegmentOut(BaseModel):
    id: int
    name: str
    description: str
    conditions: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str


class SegmentCreate(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    description: str = Field("", max_length=5000)
    conditions: dict[str, Any] = Field(description=CONDITIONS_DOC)


class SegmentPatch(Strict):
    name: str | None = Field(None, min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    description: str | None = Field(None, max_length=5000)
    conditions: dict[str, Any] | None = Field(None, description=CONDITIONS_DOC)


class CountBody(Strict):
    conditions: dict[str, Any] = Field(description=CONDITIONS_DOC)


class CountOut(BaseModel):
    count: int


class FieldInfo(BaseModel):
    field: str
    label: str
    type: str
    operators: list[str]
    choices: list[str]


@operation("/segments", "GET", lists=True, permission="lists:read", summary="Saved segments",
           tag=TAG_SEGMENTS, response=list[SegmentOut])
def list_segments():
    with db.read(db.get_engine()) as conn:
        return segments.list_segments(conn)


@operation("/segments", "POST", permission="lists:write", summary="Save a segment",
           tag=TAG_SEGMENTS, body=SegmentCreate, response=SegmentOut, status=201)
def create_segment(body: SegmentCreate):
    with db.write(db.get_engine()) as conn:
        segment_id = segments.create_segment(conn, g.actor, body.name, body.conditions,
                                             body.description)
        return segments.get_segment(conn, segment_id)


@operation("/segments/<int:segment_id>", "GET", lists=True, permission="lists:read", summary="One segment",
           tag=TAG_SEGMENTS, response=SegmentOut)
def get_segment(segment_id: int):
    with db.read(db.get_engine()) as conn:
        return segments.get_segment(conn, segment_id)


@operation("/segments/<int:segment_id>", "PATCH", lists=True, permission="lists:write",
           summary="Change a segment", tag=TAG_SEGMENTS, body=SegmentPatch, response=SegmentOut)
def patch_segment(segment_id: int, body: SegmentPatch):
    with db.write(db.get_engine()) as conn:
        segments.update_segment(conn, g.actor, segment_id, name=body.name,
                                conditions=body.conditions, description=body.description)
        return segments.get_segment(conn, segment_id)


@operation("/segments/<int:segment_id>", "DELETE", lists=True, permission="lists:write",
           summary="Delete a segment", tag=TAG_SEGMENTS, status=204)
def delete_segment(segment_id: int):
    with db.write(db.get_engine()) as conn:
        segments.delete_segment(conn, g.actor, segment_id)
    return Response(status=204)


@operation("/segments/<int:segment_id>/count", "GET", lists=True, permission="lists:read",
           summary="How many subscribers match a saved segment now", tag=TAG_SEGMENTS,
           response=CountOut)
def count_segment(segment_id: int):
    with db.read(db.get_engine()) as conn:
        return {"count": segments.count(conn, segments.get_segment(conn, segment_id)["conditions"],
                                        scope.only(g.actor))}


@operation("/segments/count", "POST", lists=True, permission="lists:read",
           summary="Live count of unsaved conditions (the condition builder)", tag=TAG_SEGMENTS,
           body=CountBody, response=CountOut)
def count_conditions(body: CountBody):
    with db.read(db.get_engine()) as conn:
        return {"count": segments.count(conn, body.conditions, scope.only(g.actor))}


@operation("/segments/fields", "GET", lists=True, permission="lists:read",
           summary="Fields and operators conditions may use", tag=TAG_SEGMENTS,
           response=list[FieldInfo])
def segment_fields():
    with db.read(db.get_engine()) as conn:
        return segments.field_catalogue(conn)
