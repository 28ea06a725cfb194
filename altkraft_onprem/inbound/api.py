"""REST: bounces and complaints (GET with filters), the generic bounce intake, reclassify."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import g
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import MAX_ID, Email, operation
from altkraft_onprem.config import current_settings

from . import bounces as feedback

TAG = "Inbound mail"
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Class = Literal["hard", "soft", "policy", "content", "unknown"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BounceOut(BaseModel):
    id: int
    at: datetime
    source: str = Field(description="dsn, heuristic, relay (a synchronous 5xx), api, webhook")
    email: str
    subscriber_id: int | None
    campaign_id: int | None
    provider: str = Field(description="gmail, outlook, yahoo, mailru, yandex or other")
    bounce_class: Class
    rule: str = Field(description="The rule of the classification table that matched (or manual)")
    rules_version: int
    status: str = Field(description="Enhanced status code, e.g. 5.1.1")
    action: str
    diagnostic: str
    remote_mta: str
    suppressed: bool = Field(description="Whether this bounce suppressed the address")
    inbound_id: int | None = Field(description="The stored message it came in")


class ComplaintOut(BaseModel):
    id: int
    at: datetime
    source: str = Field(description="arf, api, webhook")
    email: str
    subscriber_id: int | None
    campaign_id: int | None
    provider: str
    feedback_type: str = Field(description="ARF Feedback-Type: abuse or fraud")
    reporter: str = Field(description="The feedback loop's User-Agent")
    inbound_id: int | None


class Page(Strict):
    campaign: Id | None = Field(None, description="Only this campaign's")
    since: datetime | None = Field(None, description="At or after this time (ISO 8601)")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


class BounceQuery(Page):
    class_: Class | None = Field(None, alias="class", description="Only this class")


class BounceIn(Strict):
    email: Email
    campaign_id: Id | None = None
    status: str = Field("", max_length=32, description="Enhanced status code, e.g. 5.1.1")
    diagnostic: str = Field("", max_length=2000, description="The remote server's reply")
    action: Literal["failed", "delayed"] = "failed"


class BounceAccepted(BaseModel):
    id: int | None = Field(description="The bounce recorded (none for a delay)")
    state: str = Field(description="processed, review (class unknown) or ignored (a delay)")
    bounce_class: Class | None = None
    suppressed: bool | None = None


class Reclassify(Strict):
    bounce_class: Class | None = Field(None, description="A person's decision; empty: the current "
                                       "rule table decides")


@operation("/bounces", "GET", permission="deliverability:read", tag=TAG,
           summary="Bounces, newest first (filters: campaign, class, since)",
           query=BounceQuery, response=list[BounceOut])
def list_bounces(query: BounceQuery):
    with db.read(db.get_engine()) as conn:
        return feedback.list_bounces(conn, campaign_id=query.campaign, bounce_class=query.class_,
                                     since=query.since, limit=query.limit, offset=query.offset)


@operation("/bounces", "POST", permission="subscribers:delete", tag=TAG,
           summary="Report a bounce received elsewhere (generic intake): classified and applied "
                   "like one that came back by mail", body=BounceIn, response=BounceAccepted,
           status=202)
def post_bounce(body: BounceIn):
    with db.write(db.get_engine()) as conn:
        return feedback.intake_bounce(conn, current_settings(), g.actor, email=body.email,
                                      campaign_id=body.campaign_id, status=body.status,
                                      diagnostic=body.diagnostic, action=body.action)


@operation("/bounces/<int:bounce_id>/reclassify", "POST", permission="subscribers:delete", tag=TAG,
           summary="Classify a bounce again (current rules, or a given class); audited",
           body=Reclassify, response=BounceOut)
def reclassify_bounce(bounce_id: int, body: Reclassify):
    with db.write(db.get_engine()) as conn:
        return feedback.reclassify(conn, g.actor, bounce_id, body.bounce_class)


@operation("/complaints", "GET", permission="deliverability:read", tag=TAG,
           summary="Spam complaints, newest first (filters: campaign, since)",
           query=Page, response=list[ComplaintOut])
def list_complaints(query: Page):
    with db.read(db.get_engine()) as conn:
        return feedback.list_complaints(conn, campaign_id=query.campaign, since=query.since,
                                        limit=query.limit, offset=query.offset)
