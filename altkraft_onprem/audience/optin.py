"""Public subscription (hosted form and embeddable snippet) and double opt-in.

The confirmation email is an editable template stored in the list's `form` settings; its
placeholders {{ confirm_url }}, {{ list_name }} and {{ first_name }} are replaced as plain text
(escaped in HTML), never evaluated. It goes out through delivery.outbound.send_single in a job.
"""
from __future__ import annotations

from datetime import timedelta
from html import escape
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, select

from altkraft_onprem.access.models import Actor, system_actor
from altkraft_onprem.access.scope import require_lists
from altkraft_onprem.access.service import record
from altkraft_onprem.config import Settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound

from . import links
from .activity import log_activity, record_consent
from .lists import get_list
from .models import STANDARD_FIELDS, consents, subscriber_lists, subscribers
from .subscribers import clean_values, create_subscriber, get_subscriber, set_membership
from .suppression import is_suppressed, lift_self_unsubscribe, only_self_unsubscribed

HONEYPOT = "website"           # a field people never see; bots fill it
FORM_FIELDS = tuple(f for f in STANDARD_FIELDS if f != "email")
DEFAULT_SUBJECT = "Confirm your subscription to {{ list_name }}"
DEFAULT_HTML = ("<p>Hello {{ first_name }},</p><p>please confirm that you want to receive "
                "<b>{{ list_name }}</b>:</p><p><a href=\"{{ confirm_url }}\">Yes, subscribe me"
                "</a></p><p>If you did not ask for this, ignore this email.</p>")
DEFAULT_TEXT = ("Hello {{ first_name }},\n\nplease confirm that you want to receive "
                "{{ list_name }}:\n\n{{ confirm_url }}\n\nIf you did not ask for this, ignore "
                "this email.\n")


def form_settings(found_list: dict) -> dict:
    """The list's form and confirmation settings with defaults filled in."""
    form = dict(found_list.get("form") or {})
    form["fields"] = [f for f in form.get("fields", ["first_name"]) if f in FORM_FIELDS]
    form.setdefault("title", found_list["name"])
    form.setdefault("confirm_subject", DEFAULT_SUBJECT)
    form.setdefault("confirm_html", DEFAULT_HTML)
    form.setdefault("confirm_text", DEFAULT_TEXT)
    form.setdefault("from_email", "")
    form.setdefault("from_name", "")
    return form


def public_list(conn: Connection, list_id: int) -> dict:
    found = get_list(conn, list_id, counts=False)
    if found["visibility"] != "public":
        raise NotFound("no such list")
    return found


RESEND_GAP = timedelta(minutes=10)


def too_many_signups(conn: Connection, ip: str, per_hour: int) -> bool:
    """Whether this address already made `per_hour` sign-ups in the last hour."""
    if not ip:
        return False
    recent = conn.execute(select(func.count()).select_from(consents).where(
        consents.c.ip == ip[:64], consents.c.kind == "subscribe",
        consents.c.at >= utcnow() - timedelta(hours=1))).scalar_one()
    return recent >= per_hour


def subscribe(conn: Connection, list_id: int, data: dict, *, ip: str = "", user_agent: str = "",
              form: str = "hosted form") -> dict:
    """A sign-up from a public form. Returns {"subscriber_id", "action"} where action is
    "confirm" (a confirmation email must be sent), "subscribed", "already", "pending" (asked
    less than 10 minutes ago: no second email) or "ignored"
    (suppressed or in the trash: the page says the same as for a new sign-up)."""
    found = public_list(conn, list_id)
    allowed = set(form_settings(found)["fields"]) | {"email"}
    values = clean_values(conn, {k: v for k, v in data.items() if k in allowed})
    if is_suppressed(conn, values["email"]) and not (
            found["optin"] == "double" and only_self_unsubscribed(conn, values["email"])):
        # Only a confirmed link may undo someone's own unsubscribe-from-everything.
        return {"subscriber_id": None, "action": "ignored"}
    row = conn.execute(select(subscribers.c.id, subscribers.c.deleted_at).where(
        subscribers.c.email == values["email"])).first()
    if row is not None and row.deleted_at is not None:
        return {"subscriber_id": None, "action": "ignored"}
    if row is None:
        subscriber_id = create_subscriber(conn, system_actor("form"), values, source="form")
    else:
        subscriber_id = row.id
    status = conn.execute(select(subscriber_lists.c.status).where(
        subscriber_lists.c.subscriber_id == subscriber_id,
        subscriber_lists.c.list_id == list_id)).scalar()
    if status == "confirmed":
        return {"subscriber_id": subscriber_id, "action": "already"}
    if status == "unconfirmed" and conn.execute(select(consents.c.id).where(
            consents.c.subscriber_id == subscriber_id, consents.c.list_id == list_id,
            consents.c.kind == "subscribe", consents.c.at >= utcnow() - RESEND_GAP)).first():
        return {"subscriber_id": subscriber_id, "action": "pending"}   # no second email yet
    record_consent(conn, subscriber_id, list_id, "subscribe", ip=ip, user_agent=user_agent, form=form)
    if found["optin"] == "double":
        set_membership(conn, subscriber_id, list_id, "unconfirmed")
        return {"subscriber_id": subscriber_id, "action": "confirm"}
    set_membership(conn, subscriber_id, list_id, "confirmed")
    return {"subscriber_id": subscriber_id, "action": "subscribed"}


def confirm(conn: Connection, subscriber_id: int, list_id: int, *, ip: str = "",
            user_agent: str = "") -> dict:
    """Confirms a membership from a signed link (idempotent). Returns the list."""
    found = get_list(conn, list_id, counts=False)
    person = get_subscriber(conn, subscriber_id)
    status = next((m["status"] for m in person["lists"] if m["list_id"] == list_id), None)
    if status is None:
        raise NotFound("this subscription no longer exists")
    if status == "unconfirmed":
        lift_self_unsubscribe(conn, person["email"])
        set_membership(conn, subscriber_id, list_id, "confirmed")
        record_consent(conn, subscriber_id, list_id, "confirm", ip=ip, user_agent=user_agent,
                       form="confirmation link")
    return found


def resend(conn: Connection, actor: Actor, subscriber_id: int, list_id: int) -> None:
    """Checks that a confirmation may be sent again (the caller enqueues it); a role limited to
    some lists only for its own lists."""
    require_lists(actor, [list_id], "list")
    person = get_subscriber(conn, subscriber_id)
    status = next((m["status"] for m in person["lists"] if m["list_id"] == list_id), None)
    if status != "unconfirmed":
        raise Conflict("only unconfirmed memberships get a confirmation email", "list")
    log_activity(conn, subscriber_id, "confirmation_requested", list_id=list_id, by=actor.label)
    record(conn, actor, "subscriber.resend_confirmation", "subscriber", subscriber_id,
           list_id=list_id)


def _fill(template: str, values: dict, html: bool) -> str:
    out = template
    for key, value in values.items():
        text = escape(value, quote=True) if html else value
        for spelling in ("{{ " + key + " }}", "{{" + key + "}}"):
            out = out.replace(spelling, text)
    return out


def confirmation_message(conn: Connection, settings: Settings, subscriber_id: int,
                         list_id: int) -> dict:
    """Keyword arguments for delivery.outbound.send_single."""
    person = get_subscriber(conn, subscriber_id)
    found = get_list(conn, list_id, counts=False)
    form = form_settings(found)
    values = {"confirm_url": links.confirm_url(settings, subscriber_id, list_id),
              "list_name": found["name"], "first_name": person["first_name"] or ""}
    from_email = form["from_email"] or settings["audience.from_email"] or \
        f"noreply@{urlsplit(settings['server.public_url']).hostname}"
    name = " ".join(x for x in (person["first_name"], person["last_name"]) if x)
    return {"to_email": person["email"], "to_name": name, "from_email": from_email,
            "from_name": form["from_name"] or settings["audience.from_name"],
            "reply_to": settings["audience.reply_to"] or None,
            "subject": _fill(form["confirm_subject"], values, False).replace("\n", " "),
            "html": _fill(form["confirm_html"], values, True),
            "text": _fill(form["confirm_text"], values, False)}
