"""Previews and test sends: a version rendered for a real subscriber (or sample data), with
the message's external data, by the same rule as a campaign send (a variable without a
value and without a default is an error)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.audience import links, subscribers
from altkraft_onprem.audience import service as audience
from altkraft_onprem.config import Settings
from altkraft_onprem.delivery.outbound import DeliveryError, send_single
from altkraft_onprem.errors import NotFound, ServiceError

from . import data as external
from . import service
from .models import clean_data_source
from .render import Rendered, TemplateProblem, compile_version
from .webview import PREVIEW_TOKEN

SAMPLE_SUBSCRIBER: dict[str, Any] = {
    "id": 0, "email": "jane.doe@example.com", "first_name": "Jane", "last_name": "Doe",
    "phone": "+49 30 1234567", "gender": "female", "birth_date": "1990-05-17",
    "company": "Example GmbH", "city": "Berlin", "region": "Berlin", "country": "DE",
    "language": "en", "timezone": "Europe/Berlin", "created_at": "2024-03-01T09:30:00+00:00",
    "custom": {"loyalty_tier": "Gold", "bonus_points": 1250},
}
MAX_TEST_RECIPIENTS = 10


def _subscriber(conn: Connection, subscriber_id: int | None, email: str | None) -> dict[str, Any]:
    if subscriber_id is None and not email:
        return dict(SAMPLE_SUBSCRIBER)

    if subscriber_id is None:
        found = subscribers.find_by_email(conn, email or "")
        if found is None:
            raise NotFound("no subscriber with the address %(email)s", "email", email=email)
        subscriber_id = found["id"]
    contexts = audience.render_context(conn, [subscriber_id])
    if subscriber_id not in contexts:
        raise NotFound("subscriber %(subscriber_id)s does not exist", "subscriber_id", subscriber_id=subscriber_id)
    return contexts[subscriber_id]


def _links(settings: Settings, subscriber_id: int) -> dict[str, str]:
    base = settings["server.public_url"]
    view = f"{base}/p/view/{PREVIEW_TOKEN}"
    if not subscriber_id:
        return {"unsubscribe_url": f"{base}/p/unsubscribe/preview",
                "preferences_url": f"{base}/p/preferences/preview",
                "view_in_browser_url": view}
    return {"unsubscribe_url": links.unsubscribe_url(settings, subscriber_id),
            "preferences_url": links.preferences_url(settings, subscriber_id),
            "view_in_browser_url": view}


def _contexts(settings: Settings, version: dict[str, Any], people: list[dict[str, Any]],
              list_name: str, campaign_name: str) -> list[dict[str, Any]]:
    """The variables a message sees, per person, with the version's external data."""
    contexts = [{"subscriber": person, "list": {"name": list_name}, "campaign": {"name": campaign_name},
                 **_links(settings, person.get("id") or 0)} for person in people]
    source = version.get("data_source")
    if source and source.get("kind") == "per_subscriber":
        documents = external.per_subscriber_data(settings, source, dict(enumerate(contexts)))
        for index, context in enumerate(contexts):
            context["data"] = documents[index]
    else:
        shared = external.shared_data(settings, source)
        for context in contexts:
            context["data"] = shared
    return contexts


def context_for(conn: Connection, settings: Settings, version: dict[str, Any], message_name: str,
                subscriber_id: int | None = None, email: str | None = None) -> dict[str, Any]:
    return _contexts(settings, version, [_subscriber(conn, subscriber_id, email)],
                     "Preview list", message_name)[0]


def first_unrenderable(settings: Settings, version: dict[str, Any], people: list[dict[str, Any]],
                       *, list_name: str, campaign_name: str) -> tuple[dict, TemplateProblem] | None:
    """The version rendered for each person as a campaign send renders it (their own values,
    the list and campaign names, the external data): the first person it fails for, with the
    problem, or None. DataFetchError when the external data cannot be had."""
    compiled = compile_version(version)
    for person, context in zip(people, _contexts(settings, version, people, list_name, campaign_name),
                               strict=True):
        try:
            compiled.render(context)
        except TemplateProblem as problem:
            return person, problem
    return None


def render_preview(conn: Connection, settings: Settings, message_id: int, version: int | None = None,
                   subscriber_id: int | None = None, email: str | None = None,
                   draft: dict[str, Any] | None = None, event: dict[str, Any] | None = None) -> Rendered:
    """Renders a saved version, or unsaved editor content (`draft`), for one subscriber, with
    a sample triggering `event` (what a workflow's message sees as {{ event.… }}).
    Raises TemplateProblem (line + message) or a ServiceError for data that cannot be had."""
    message = service.get_message(conn, message_id)
    row = service.get_version(conn, message_id, version)
    if draft:
        draft = {k: v for k, v in draft.items() if v is not None}
        if "data_source" in draft:
            draft["data_source"] = clean_data_source(draft["data_source"])
        row = {**row, **draft, "id": None}
        if draft.get("text") is None:
            row["text_follows_html"] = True
    context = context_for(conn, settings, row, message["name"], subscriber_id, email)
    context["event"] = event or {}
    return compile_version(row).render(context)


def send_test(conn: Connection, settings: Settings, actor: Actor, message_id: int,
              recipients: list[str], *, from_email: str, from_name: str = "",
              subscriber_id: int | None = None, version: int | None = None) -> list[dict[str, Any]]:
    """Sends the rendered version to a few addresses through the configured relay; one result
    per address (sent with its Message-ID, or the reason it was not)."""
    addresses = [a.strip() for a in recipients if a and a.strip()]
    if not addresses:
        raise ServiceError("give at least one address to send the test to", "recipients")
    if len(addresses) > MAX_TEST_RECIPIENTS:
        raise ServiceError("at most %(max_test_recipients)s test addresses", "recipients", max_test_recipients=MAX_TEST_RECIPIENTS)
    if "@" not in from_email:
        raise ServiceError("a From address is needed", "from_email")
    try:
        rendered = render_preview(conn, settings, message_id, version, subscriber_id)
    except TemplateProblem as problem:
        raise ServiceError("the message has an error (%(problem)s); fix it before testing",
                           problem.part, problem=problem) from None
    results = []
    for address in addresses:
        try:
            sent = send_single(settings, to_email=address, from_email=from_email, from_name=from_name,
                               subject=rendered.subject, html=rendered.html, text=rendered.text,
                               headers={"X-Altkraft-Test": "1"})
            results.append({"email": address, "sent": True, "message_id": sent.message_id,
                            "error": None})
        except DeliveryError as exc:
            results.append({"email": address, "sent": False, "message_id": None, "error": str(exc)})
    record(conn, actor, "message.send_test", "message", message_id,
           recipients=addresses, sent=sum(r["sent"] for r in results))
    return results
