"""The HTTP request node: at least once, with a stable idempotency key.

The request is made before the step's transaction (a transaction must not wait on a remote
server), signed like outgoing webhooks (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature` with the workflow's signing secret), with `Idempotency-Key` (and
`webhook-id`) `enrollment:node:visit` — the same on every try, so a
receiver that honours it acts once although a crash after its answer and before our commit
makes us ask again. 5xx, 408, 429 and network errors are tried again with exponential
back-off up to the node's max_attempts; then the "failure" branch, or (without one) the
enrollment is parked, to be retried by a person.
"""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from altkraft_onprem import db, http_guard
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience import subscribers as subscriber_service
from altkraft_onprem.audience.models import STANDARD_FIELDS
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError

from .staff_notice import render
from .step_context import Batch, Outcome, Step
from .webhook_sender import Answer, signature
from .webhooks import EXCERPT_CHARS, policy
from .workflow_models import workflows

BACKOFF_SECONDS = 30            # 30 s, 1 min, 2 min, … capped at an hour


def idempotency_key(enrollment: dict) -> str:
    return f"{enrollment['id']}:{enrollment['node_id']}:{enrollment['visit']}"


def signing_secrets(conn, workflow_id: int) -> list[str]:
    """What the workflow's requests are signed with (the previous secret too, if any)."""
    row = conn.execute(select(workflows.c.signing_secret, workflows.c.previous_signing_secret)
                       .where(workflows.c.id == workflow_id)).first()
    return [secret for secret in (row or ()) if secret]


def call(engine, settings, enrollment: dict, node: dict) -> Answer:
    config = node["config"]
    with db.read(engine) as conn:
        person = audience.render_context(conn, [enrollment["subscriber_id"]]).get(
            enrollment["subscriber_id"], {})
        secrets = signing_secrets(conn, enrollment["workflow_id"])
    event = enrollment["event"]
    url = render(config["url"], person, event).strip()
    body = render(config["body"], person, event) if config.get("body") else json.dumps(
        {"subscriber": person, "event": event}, default=str)
    method = config.get("method", "POST")
    key = idempotency_key(enrollment)
    now = utcnow()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key,
               # signed like webhooks: the same id on every try, the body as sent (empty: GET)
               "webhook-id": key, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature(secrets, key, now, "" if method == "GET" else body)}
    try:
        response = http_guard.request(policy(settings), method, url,
                                      body=None if method == "GET" else body.encode(),
                                      headers=headers, follow_redirects=False)
    except http_guard.Unreachable as exc:
        return Answer(None, exc.message, None, retryable=True)
    except http_guard.Refused as exc:
        return Answer(None, exc.message, None, retryable=False)
    status = response.status
    return Answer(status, None if 200 <= status < 300 else f"HTTP {status}",
                  response.body.decode("utf-8", "replace"),
                  retryable=status >= 500 or status in (408, 429))


def webhook(batch: Batch) -> list[Outcome]:
    """The executor: each person's answer was fetched before the batch's transaction."""
    return [outcome(step, batch.answers.get(step.enrollment["id"])) for step in batch.steps()]


def outcome(step: Step, answer: Answer | None) -> Outcome:
    config = step.config
    if answer is None:                      # the node changed under us: try again
        return Outcome(wait_until=step.now)
    detail = {"status": answer.status, "error": answer.error,
              "response": (answer.excerpt or "")[:EXCERPT_CHARS]}
    if answer.ok:
        mapped = _map_response(step, answer.excerpt or "", config.get("map") or {})
        return Outcome(detail={**detail, "mapped": mapped})
    attempt = step.enrollment["attempts"] + 1
    if answer.retryable and attempt < config.get("max_attempts", 6):
        delay = min(BACKOFF_SECONDS * 2 ** (attempt - 1), 3600)
        return Outcome(wait_until=step.now + timedelta(seconds=delay),
                       detail={**detail, "attempt": attempt})
    return Outcome(branch="failure", detail={**detail, "failed": True, "attempts": attempt})


def _map_response(step: Step, text: str, mapping: dict) -> list[str]:
    """Response JSON keys (dotted paths) into the person's fields."""
    if not mapping:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        return []
    data: dict = {}
    for path, name in mapping.items():
        value = document
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if name in STANDARD_FIELDS:
            data[name] = value
        else:
            data.setdefault("custom", {})[name.removeprefix("custom.")] = value
    if not data:
        return []
    try:
        with step.conn.begin_nested():
            return subscriber_service.update_subscriber(step.conn, step.actor, step.subscriber_id, data)
    except ServiceError as exc:            # a value the field refuses: the step goes on
        return [f"not mapped: {exc.message}"]
