"""REST routes: trash and the suppression list."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Response, g
from pydantic import BaseModel, ConfigDict, Field, model_validator

from altkraft_onprem import db
from altkraft_onprem.api import DOMAIN_PATTERN, MAX_ID, Email, exactly_one, operation

from . import suppression, trash
from .api import TAG_SUPP, TAG_TRASH, Strict

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class TrashItem(BaseModel):
    id: int
    email: str
    first_name: str | None
    last_name: str | None
    deleted_at: datetime
    deleted_batch: int | None


class BatchOut(BaseModel):
    id: int
    at: datetime
    actor: str
    description: str
    count: int
    remaining: int


class TrashOut(BaseModel):
    items: list[TrashItem]
    total: int
    batches: list[BatchOut]


class TrashQuery(Strict):
    batch: Id | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


class RestoreBody(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("ids", "batch"))

    ids: list[Id] | None = Field(None, min_length=1, max_length=100_000)
    batch: Id | None = None

    @model_validator(mode="after")
    def one_target(self):
        if (self.ids is None) == (self.batch is None):
            raise ValueError("give ids or batch")
        return self


class RestoreOut(BaseModel):
    restored: int


@operation("/trash", "GET", permission="subscribers:delete",
           summary="Subscribers in the trash and the deletion batches", tag=TAG_TRASH,
           query=TrashQuery, response=TrashOut)
def list_trash(query: TrashQuery):
    with db.read(db.get_engine()) as conn:
        items, total = trash.trash_items(conn, batch=query.batch, limit=query.limit,
                                         offset=query.offset)
        return {"items": items, "total": total, "batches": trash.batches(conn)}


@operation("/trash/restore", "POST", permission="subscribers:delete",
           summary="Restore subscribers by ids or a whole deletion batch", tag=TAG_TRASH,
           body=RestoreBody, response=RestoreOut)
def restore_trash(body: RestoreBody):
    with db.write(db.get_engine()) as conn:
        return {"restored": trash.restore(conn, g.actor, ids=body.ids, batch=body.batch)}


class SuppressionOut(BaseModel):
    id: int
    email: str | None
    domain: str | None
    reason: str
    source: str
    created_at: datetime
    created_by: str


class SuppressionCreate(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("email", "domain"))

    email: Email | None = None
    domain: str | None = Field(None, max_length=255, json_schema_extra={"pattern": DOMAIN_PATTERN},
                               description="A whole domain, e.g. example.com")
    reason: str = Field("", max_length=200)
    source: Literal["manual", "api", "bounce", "complaint"] = "api"

    @model_validator(mode="after")
    def one_target(self):
        if (self.email is None) == (self.domain is None):
            raise ValueError("give either email or domain")
        return self


class SuppressionQuery(Strict):
    search: str | None = Field(None, max_length=200)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


@operation("/suppressions", "GET", permission="lists:read", summary="The suppression list",
           tag=TAG_SUPP, query=SuppressionQuery, response=list[SuppressionOut])
def list_suppressions(query: SuppressionQuery):
    with db.read(db.get_engine()) as conn:
        rows, _ = suppression.list_entries(conn, search=query.search or "", limit=query.limit,
                                           offset=query.offset)
        return rows


@operation("/suppressions", "POST", permission="subscribers:delete",
           summary="Suppress an address or a whole domain", tag=TAG_SUPP,
           body=SuppressionCreate, response=SuppressionOut, status=201)
def create_suppression(body: SuppressionCreate):
    with db.write(db.get_engine()) as conn:
        entry_id = suppression.suppress(conn, g.actor, email=body.email, domain=body.domain,
                                        reason=body.reason, source=body.source)
        return suppression.get_entry(conn, entry_id)


@operation("/suppressions/<int:entry_id>", "GET", permission="lists:read",
           summary="One suppression entry", tag=TAG_SUPP, response=SuppressionOut)
def get_suppression(entry_id: int):
    with db.read(db.get_engine()) as conn:
        return suppression.get_entry(conn, entry_id)


@operation("/suppressions/<int:entry_id>", "DELETE", permission="subscribers:delete",
           summary="Remove a suppression entry (audited)", tag=TAG_SUPP, status=204)
def delete_suppression(entry_id: int):
    with db.write(db.get_engine()) as conn:
        suppression.remove(conn, g.actor, entry_id)
    return Response(status=204)
