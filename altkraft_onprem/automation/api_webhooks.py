"""REST routes for outgoing webhooks: subscriptions, their delivery log, redelivery."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Response, g
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import HTTP_URL_PATTERN, MAX_ID, operation
from altkraft_onprem.config import current_settings

from . import jobs, webhooks
from .models import DELIVERY_STATES, WEBHOOK_EVENT_TYPES

TAG = "Webhooks"
EventType = Literal[tuple(WEBHOOK_EVENT_TYPES)]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookCreate(Strict):
    url: str = Field(min_length=1, max_length=2000, json_schema_extra={"pattern": HTTP_URL_PATTERN},
                     description="http:// or https://; private "
                     "and loopback addresses only where automation.webhook_allowed_private_networks "
                     "allows them")
    events: list[EventType] = Field(min_length=1, max_length=len(WEBHOOK_EVENT_TYPES))
    list_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only events about members "
                                "of this list (events about no person are not sent)")
    description: str = Field("", max_length=200)


class WebhookPatch(Strict):
    url: str | None = Field(None, min_length=1, max_length=2000,
                            json_schema_extra={"pattern": HTTP_URL_PATTERN})
    events: list[EventType] | None = Field(None, min_length=1, max_length=len(WEBHOOK_EVENT_TYPES))
    list_id: int | None = Field(None, ge=1, le=MAX_ID)
    description: str | None = Field(None, max_length=200)
    active: bool | None = Field(None, description="true also clears the failure count")
    rotate_secret: bool = Field(False, description="A new secret; the old one keeps signing "
                                "alongside it (two signatures) until the next rotation")


class WebhookCreated(BaseModel):
    id: int
    secret: str = Field(description="whsec_… (Standard Webhooks); shown only here")


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    list_id: int | None
    active: bool
    consecutive_failures: int
    disabled_reason: str | None
    description: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    secret: str | None = Field(None, description="Only in the answer to a rotation")


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The webhook-id header: the same on every try")
    type: str
    state: Literal[DELIVERY_STATES]  # type: ignore[valid-type]
    attempts: int
    last_status: int | None
    last_error: str | None
    response_excerpt: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    total: int


class DeliveryQuery(Strict):
    state: Literal[DELIVERY_STATES] | None = None  # type: ignore[valid-type]
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_ID)


@operation("/webhooks", "GET", permission="automation:read", summary="List webhook subscriptions",
           tag=TAG, response=list[WebhookOut])
def list_webhooks():
    with db.read(db.get_engine()) as conn:
        return webhooks.list_webhooks(conn)


@operation("/webhooks", "POST", permission="automation:write", summary="Subscribe a URL to events",
           tag=TAG, body=WebhookCreate, response=WebhookCreated, status=201)
def create_webhook(body: WebhookCreate):
    with db.write(db.get_engine()) as conn:
        return webhooks.create(conn, g.actor, current_settings(), url=body.url, events=body.events,
                               list_id=body.list_id, description=body.description)


@operation("/webhooks/<int:webhook_id>", "GET", permission="automation:read",
           summary="A webhook subscription", tag=TAG, response=WebhookOut)
def get_webhook(webhook_id: int):
    with db.read(db.get_engine()) as conn:
        return webhooks.get(conn, webhook_id)


@operation("/webhooks/<int:webhook_id>", "PATCH", permission="automation:write",
           summary="Change, switch on/off or rotate the secret of a subscription", tag=TAG,
           body=WebhookPatch, response=WebhookOut)
def patch_webhook(webhook_id: int, body: WebhookPatch):
    changes = body.model_dump(exclude_unset=True)
    with db.write(db.get_engine()) as conn:
        found = webhooks.update_webhook(conn, g.actor, current_settings(), webhook_id, **changes)
    if found["active"]:
        jobs.deliver_webhooks()         # what waited while it was off
    return found


@operation("/webhooks/<int:webhook_id>", "DELETE", permission="automation:write",
           summary="Delete a subscription and its delivery log", tag=TAG, status=204)
def delete_webhook(webhook_id: int):
    with db.write(db.get_engine()) as conn:
        webhooks.delete_webhook(conn, g.actor, webhook_id)
    return Response(status=204)


@operation("/webhooks/<int:webhook_id>/deliveries", "GET", permission="automation:read",
           summary="The delivery log, newest first", tag=TAG, query=DeliveryQuery,
           response=DeliveryPage)
def list_deliveries(webhook_id: int, query: DeliveryQuery):
    with db.read(db.get_engine()) as conn:
        items, total = webhooks.deliveries(conn, webhook_id, state=query.state, limit=query.limit,
                                           offset=query.offset)
    return {"items": items, "total": total}


@operation("/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver", "POST",
           permission="automation:write", summary="Send an event again (same id and body)",
           tag=TAG, response=DeliveryOut, status=202)
def redeliver(webhook_id: int, delivery_id: int):
    with db.write(db.get_engine()) as conn:
        found = webhooks.redeliver(conn, g.actor, webhook_id, delivery_id)
    jobs.deliver_webhooks()
    return found
