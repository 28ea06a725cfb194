"""REST routes for workflows and custom events."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Response, g
from pydantic import BaseModel, ConfigDict, Field, model_validator

from altkraft_onprem import db
from altkraft_onprem.api import MAX_ID, Email, Id, exactly_one, operation
from altkraft_onprem.errors import Conflict, ServiceError

from . import custom_events, enrollment, jobs, workflows
from .definition import WorkflowDefinition, dump
from .workflow_models import ENROLLMENT_STATES, WORKFLOW_STATES

TAG = "Workflows"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkflowOut(BaseModel):
    id: int
    name: str
    state: Literal[WORKFLOW_STATES]  # type: ignore[valid-type]
    version: int | None = Field(description="The published version new people enter")
    draft: dict[str, Any] = Field(description="The workflow JSON being edited")
    created_at: datetime
    created_by: str
    updated_at: datetime


class Created(BaseModel):
    id: int


class PublishBody(Strict):
    node_map: dict[str, str] | None = Field(None, description="Move people inside onto the new "
                                            "version: {old node id: new node id}; others stay "
                                            "on their version")


class Published(BaseModel):
    version: int
    version_id: int
    moved: int
    backfilled: int = Field(description="People the backfill took in (entry.backfill), when "
                            "this made the workflow active")


class StateOut(BaseModel):
    state: str


class EnrollBody(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("subscriber_ids", "segment_id"))

    subscriber_ids: list[Id] | None = Field(None, max_length=100_000)
    segment_id: Id | None = None
    test: bool = Field(False, description="Run through with waits compressed (a test address)")

    @model_validator(mode="after")
    def one_target(self):
        if (self.subscriber_ids is None) == (self.segment_id is None):
            raise ValueError("give either subscriber_ids or segment_id")
        return self


class EnrollOut(BaseModel):
    asked: int
    entered: int
    queued: bool = Field(False, description="A segment of more than 100,000 people is enrolled "
                         "in the background, a chunk at a time (entered counts none yet)")


class ResumeBody(Strict):
    enrollment_ids: list[Id] | None = Field(None, max_length=100_000, description="Parked "
                                            "enrollments to resume; absent: every parked one")


class ResumeOut(BaseModel):
    resumed: int


class EnrollmentOut(BaseModel):
    id: int
    subscriber_id: int
    email: str | None
    version_id: int
    state: Literal[ENROLLMENT_STATES]  # type: ignore[valid-type]
    node_id: str | None
    visit: int
    waiting_until: datetime | None
    waiting_for: str | None
    test: bool
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None


class EnrollmentPage(BaseModel):
    items: list[EnrollmentOut]
    total: int


class EnrollmentQuery(Strict):
    state: Literal[ENROLLMENT_STATES] | None = None  # type: ignore[valid-type]
    subscriber_id: int | None = Field(None, ge=1, le=MAX_ID)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_ID)


class NodeStats(BaseModel):
    entered: int
    waiting: int
    done: int
    exited: int
    converted: int = Field(description="Of those who passed the node, how many reached a goal "
                           "node afterwards (a goal node: those who reached it)")


class EventIn(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("email", "subscriber_id"))

    email: Email | None = None
    subscriber_id: Id | None = None
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    properties: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    idempotency_key: str | None = Field(None, min_length=1, max_length=200, description="The same "
                                        "key twice is one event (it enrolls once)")

    @model_validator(mode="after")
    def one_person(self):
        if (self.email is None) == (self.subscriber_id is None):
            raise ValueError("give either email or subscriber_id")
        return self


class EventAccepted(BaseModel):
    id: int
    duplicate: bool


def _engine():
    return db.get_engine()


@operation("/workflows", "GET", permission="automation:read", summary="List workflows", tag=TAG,
           response=list[WorkflowOut])
def list_workflows():
    with db.read(_engine()) as conn:
        return workflows.list_workflows(conn)


@operation("/workflows", "POST", permission="automation:write", summary="Create a workflow "
           "(a draft; publish it to start)", tag=TAG, body=WorkflowDefinition, response=Created,
           status=201)
def create_workflow(body: WorkflowDefinition):
    with db.write(_engine()) as conn:
        return {"id": workflows.create(conn, g.actor, dump(body))}


@operation("/workflows/<int:workflow_id>", "GET", permission="automation:read",
           summary="A workflow", tag=TAG, response=WorkflowOut)
def get_workflow(workflow_id: int):
    with db.read(_engine()) as conn:
        return workflows.get(conn, workflow_id)


@operation("/workflows/<int:workflow_id>", "PATCH", permission="automation:write",
           summary="Replace a workflow's draft (the published version is not touched)", tag=TAG,
           body=WorkflowDefinition, response=WorkflowOut)
def patch_workflow(workflow_id: int, body: WorkflowDefinition):
    with db.write(_engine()) as conn:
        workflows.update_draft(conn, g.actor, workflow_id, dump(body))
        return workflows.get(conn, workflow_id)


@operation("/workflows/<int:workflow_id>", "DELETE", permission="automation:write",
           summary="Archive a workflow (everyone inside leaves)", tag=TAG, status=204)
def delete_workflow(workflow_id: int):
    with db.write(_engine()) as conn:
        workflows.archive(conn, g.actor, workflow_id, wake=jobs.wake)
    return Response(status=204)


@operation("/workflows/<int:workflow_id>/publish", "POST", permission="automation:write",
           summary="Check the draft and publish it as the next version (sending email also "
           "needs campaigns:send)", tag=TAG, body=PublishBody, response=Published)
def publish_workflow(workflow_id: int, body: PublishBody):
    with db.write(_engine()) as conn:
        try:
            return workflows.publish(conn, g.actor, workflow_id, body.node_map, wake=jobs.wake)
        except ServiceError as exc:
            if exc.status != 422:
                raise
            # What is wrong is the stored draft (or what it names), not this request: 409.
            raise Conflict.like(exc) from None


class SigningSecretOut(BaseModel):
    signing_secret: str = Field(description="whsec_…: verifies the Standard Webhooks signature "
                                "of the workflow's HTTP request nodes; shown this once")


@operation("/workflows/<int:workflow_id>/signing-secret", "POST", permission="automation:write",
           summary="A new secret for the workflow's HTTP requests (the previous one keeps "
           "signing alongside until the next rotation)", tag=TAG, response=SigningSecretOut)
def rotate_signing_secret(workflow_id: int):
    with db.write(_engine()) as conn:
        return {"signing_secret": workflows.rotate_signing_secret(conn, g.actor, workflow_id)}


@operation("/workflows/<int:workflow_id>/pause", "POST", permission="automation:write",
           summary="Pause: nobody enters or moves on until it is published again", tag=TAG,
           response=StateOut)
def pause_workflow(workflow_id: int):
    with db.write(_engine()) as conn:
        return {"state": workflows.pause(conn, g.actor, workflow_id)}


@operation("/workflows/<int:workflow_id>/enroll", "POST", permission="automation:write",
           summary="Enroll people (ids or a whole segment)", tag=TAG, body=EnrollBody,
           response=EnrollOut, status=202)
def enroll_people(workflow_id: int, body: EnrollBody):
    with db.write(_engine()) as conn:
        return workflows.enroll(conn, g.actor, workflow_id, subscriber_ids=body.subscriber_ids,
                                segment_id=body.segment_id, test=body.test, wake=jobs.wake)


@operation("/workflows/<int:workflow_id>/resume", "POST", permission="automation:write",
           summary="Resume parked enrollments: each tries the node where it stopped again",
           tag=TAG, body=ResumeBody, response=ResumeOut)
def resume_enrollments(workflow_id: int, body: ResumeBody):
    with db.write(_engine()) as conn:
        return {"resumed": workflows.resume(conn, g.actor, workflow_id, body.enrollment_ids,
                                            wake=jobs.wake)}


@operation("/workflows/<int:workflow_id>/enrollments", "GET", permission="automation:read",
           summary="Who is or was in a workflow, newest first", tag=TAG, query=EnrollmentQuery,
           response=EnrollmentPage)
def list_enrollments(workflow_id: int, query: EnrollmentQuery):
    with db.read(_engine()) as conn:
        workflows.get(conn, workflow_id)
        items, total = enrollment.page(conn, workflow_id, state=query.state,
                                       subscriber_id=query.subscriber_id, limit=query.limit,
                                       offset=query.offset)
    return {"items": items, "total": total}


@operation("/workflows/<int:workflow_id>/stats", "GET", permission="automation:read",
           summary="Per node: entered, waiting, done, exited, converted", tag=TAG,
           response=dict[str, NodeStats])
def workflow_stats(workflow_id: int):
    with db.read(_engine()) as conn:
        workflows.get(conn, workflow_id)
        return enrollment.stats(conn, workflow_id)


@operation("/events", "POST", permission="automation:write", summary="Post a custom event "
           "(starts or resumes workflows that listen to it)", tag=TAG, body=EventIn,
           response=EventAccepted, status=202)
def post_event(body: EventIn):
    with db.write(_engine()) as conn:
        return custom_events.receive(conn, name=body.name, subscriber_id=body.subscriber_id,
                                     email=body.email, properties=body.properties,
                                     occurred_at=body.occurred_at,
                                     idempotency_key=body.idempotency_key, wake=jobs.wake)
