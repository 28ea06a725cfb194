"""Emails to staff: a workflow's notify node, a webhook switched off. Queued after the commit
of the step that asked for them (a job: at least once; a crash between the commit and the
queue loses the notice, never the step)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy import Connection

from altkraft_onprem import db
from altkraft_onprem.delivery.outbound import DeliveryError, send_single
from altkraft_onprem.messages.sandbox import MessageEnvironment

log = logging.getLogger("altkraft.automation")
_environment = MessageEnvironment(autoescape=False)
# Set by jobs.py: enqueues send_notice(to, subject, text).
_enqueue: list[Callable[[list[str], str, str], None]] = []


def set_queue(enqueue: Callable[[list[str], str, str], None]) -> None:
    _enqueue[:] = [enqueue]


def render(template: str, person: dict, event: dict) -> str:
    try:
        return _environment.from_string(template).render(subscriber=person, event=event)
    except Exception as exc:  # noqa: BLE001 - a broken template still tells staff something
        return f"{template}\n\n(the template could not be filled in: {exc})"


def queue(conn: Connection, config: dict, person: dict, enrollment: dict) -> None:
    subject = render(config["subject"], person, enrollment["event"])[:300]
    text = render(config.get("text") or "", person, enrollment["event"])
    key = f"automation.notify.{enrollment['id']}.{enrollment['node_id']}.{enrollment['visit']}"
    db.after_commit(conn, key, lambda: _enqueue[0](list(config["to"]), subject, text))


def sender_address(settings) -> str:
    return settings["audience.from_email"] or \
        f"noreply@{urlsplit(settings['server.public_url']).hostname}"


def send(settings, to: list[str], subject: str, text: str) -> None:
    for email in to:
        try:
            send_single(settings, to_email=email, from_email=sender_address(settings),
                        from_name="ALTKRAFT", subject=subject, html="", text=text)
        except DeliveryError as exc:
            log.warning("could not send a notice to %s: %s", email, exc)
