"""REST routes of the transactional API: send one message now (202 {id}), what became of it,
recent sends."""
from __future__ import annotations

import math
import threading
import time
from datetime import datetime
from typing import Any, Literal

from flask import g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import EMAIL_PATTERN, MAX_ID, ONE_LINE, Id, exactly_one, operation, problem
from altkraft_onprem.config import current_settings

from . import jobs, transactional, transactional_report

TAG = "Transactional"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipient(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one("subscriber_id", "email"))

    subscriber_id: int | None = Field(None, ge=1, le=MAX_ID, description="A subscriber (mode "
                                      "existing only)")
    email: str | None = Field(None, min_length=3, max_length=320,
                              json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN})


# An extra header the document promises to take: X-… in capitals (the service takes any name of
# letters, digits and dashes that the message does not set itself, once, case-insensitively).
_HEADERS = {"propertyNames": {"pattern": "^X-[A-Z0-9]{1,20}(-[A-Z0-9]{1,20}){0,2}$"},
            "additionalProperties": {"type": "string", "maxLength": 900, **ONE_LINE}}


class SendRequest(Strict):
    # A subscriber_id goes with mode existing only.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"mode": {"const": "existing"}}},
        {"properties": {"to": {"properties": {"subscriber_id": {"type": "null"}}}}}]})

    message_id: Id = Field(description="The message; its current version is sent")
    to: Recipient = Field(description="Exactly one of subscriber_id and email")
    mode: Literal["existing", "create", "external"] = Field(
        "existing", description="existing: a subscriber (by id or address); create: the "
        "subscriber with that address, added (to no list) when there is none; external: an "
        "address outside the audience (nothing is stored about it but this send)")
    data: dict[str, Any] = Field(default_factory=dict, description="{{ data.… }} of the "
                                 "message (a JSON object of at most 64 KB)")
    headers: dict[str, str] = Field(default_factory=dict, max_length=transactional.MAX_HEADERS,
                                    json_schema_extra=_HEADERS,
                                    description="Extra headers (X-…, Reply-To, In-Reply-To, …); "
                                    "not those the message sets itself (From, To, Subject, …)")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200,
                                        json_schema_extra={"pattern": "^[ -~]+$"}, description="The "
                                        "same key again answers the same id and sends nothing "
                                        "more")
    category: str | None = Field(None, min_length=1, max_length=64,
                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="For the "
                                 "report; a category the settings name strictly transactional "
                                 "is sent to suppressed addresses too (never after a hard bounce)")


class Queued(BaseModel):
    id: int


class SendOut(BaseModel):
    id: int
    state: Literal["queued", "sent", "failed", "in_doubt", "skipped", "cancelled"] = Field(
        description="queued until the relay answered; in_doubt: it may have been delivered, "
        "so it is never sent again")
    message_id: int
    message_name: str | None
    campaign_id: int = Field(description="The message version's transactional carrier")
    subscriber_id: int | None
    email: str
    mode: str
    category: str | None
    strict: bool
    idempotency_key: str | None
    created_at: datetime
    done_at: datetime | None
    reply: str | None = Field(description="The relay's answer, or why it was not sent")
    message_header: str | None = Field(description="The Message-ID it was sent with")
    attempts: int | None


class SendQuery(Strict):
    state: Literal["queued", "sent", "failed", "in_doubt", "skipped", "cancelled"] | None = None
    category: str | None = Field(None, max_length=64)
    email: str | None = Field(None, max_length=320)
    message_id: int | None = Field(None, ge=1, le=MAX_ID)
    since: datetime | None = None
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class TokenBuckets:
    """Requests per API token in this process: `rate` a second on average, `burst` at once;
    the settings' figures are the whole service's, shared by its web worker processes."""

    def __init__(self):
        self._buckets: dict[Any, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key, rate: float, burst: float) -> float:
        """0 when the request may go; else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / rate


buckets = TokenBuckets()


def _limited():
    """A 429 when the caller's token is over its rate, else None."""
    settings = current_settings()
    share = max(settings["server.workers"], 1)
    wait = buckets.take(g.actor.token_id or g.actor.label, settings["transactional.token_rate"] / share,
                        max(settings["transactional.token_burst"] / share, 1.0))
    if not wait:
        return None
    response = problem(429, "Too many requests", "this token sends more than "
                       "transactional.token_rate allows; try again after Retry-After seconds")
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


@operation("/transactional", "POST", permission="transactional:send", tag=TAG,
           summary="Send a message to one person now (202; the same idempotency_key again "
           "answers the same id)", body=SendRequest, response=Queued, status=202,
           responses={409: "The address is suppressed (the reason is given; nothing was sent), "
                           "or the idempotency_key was used for another request, or the "
                           "message's carrier stopped taking sends meanwhile (nothing was "
                           "queued: send the request again)",
                      429: "Over the token's rate (transactional.token_rate); see Retry-After"})
def transactional_send(body: SendRequest):
    refused = _limited()
    if refused is not None:
        return refused
    request = transactional.Request(
        message_id=body.message_id, mode=body.mode, subscriber_id=body.to.subscriber_id,
        email=body.to.email, data=body.data, headers=body.headers,
        idempotency_key=body.idempotency_key, category=body.category)
    with db.write(db.get_engine()) as conn:
        accepted = transactional.accept(conn, g.actor, current_settings(), request)
    if not accepted.replayed:
        jobs.wake(accepted.campaign_id)
    response = jsonify({"id": accepted.id})
    response.status_code = 202
    if accepted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@operation("/transactional/<int:send_id>", "GET", permission="transactional:send", tag=TAG,
           summary="A transactional send: its state and the relay's answer", response=SendOut)
def get_transactional(send_id: int):
    with db.read(db.get_engine()) as conn:
        return transactional_report.get_send(conn, send_id)


@operation("/transactional", "GET", permission="transactional:send", tag=TAG,
           summary="Transactional sends, newest first", query=SendQuery, response=list[SendOut])
def list_transactional(query: SendQuery):
    with db.read(db.get_engine()) as conn:
        return transactional_report.list_sends(
            conn, state=query.state, category=query.category, email=query.email,
            message_id=query.message_id, since=query.since, limit=query.limit,
            offset=query.offset)
