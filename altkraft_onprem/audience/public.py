"""Public pages under /p/ (no login, no cookies): subscription form, double opt-in
confirmation, unsubscribe (with RFC 8058 one-click POST) and the preference center.

Signed tokens identify the person, so these forms carry no CSRF token (the blueprint is
exempt): without the token from the email nobody can post on someone's behalf.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, jsonify, render_template, request
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access.http import client_ip, secret_key
from altkraft_onprem.access.policy import PUBLIC, requires
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import NotFound, ServiceError

from . import captcha, links, optin
from .activity import record_consent
from .jobs import send_confirmation
from .lists import list_lists
from .service import unsubscribe
from .subscribers import get_subscriber, set_membership
from .suppression import lift_self_unsubscribe

blueprint = Blueprint("audience_public", __name__, url_prefix="/p")
blueprint.csrf_exempt = True
log = logging.getLogger(__name__)


def _ua() -> str:
    return (request.user_agent.string or "")[:300]


def _enqueue_confirmation(subscriber_id: int, list_id: int) -> None:
    try:
        send_confirmation(subscriber_id, list_id)
    except Exception:  # noqa: BLE001 - the sign-up is stored; the email can be resent
        log.exception("could not queue the confirmation email for subscriber %s", subscriber_id)


def _form_page(found: dict, form: dict, values: dict, error: str | None, status: int = 200):
    settings = current_settings()
    response = Response(render_template(
        "audience/public_subscribe.html", lst=found, form=form, values=values, error=error,
        honeypot=optin.HONEYPOT, captcha=settings["public.captcha"],
        provider=captcha.PROVIDERS.get(settings["public.captcha"]),
        site_key=settings["public.captcha_site_key"]), status)
    origins = " ".join(captcha.csp_sources(settings))
    if origins:     # the provider's widget: its script and frames, on this page only
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline' "
            f"{origins}; script-src 'self' {origins}; frame-src 'self' {origins}; connect-src "
            f"'self' {origins}; frame-ancestors 'self'; base-uri 'self'; form-action 'self'; "
            "object-src 'none'")
    return response


@blueprint.route("/captcha")
@requires(PUBLIC)
def captcha_challenge():
    """A proof-of-work challenge for the hosted form's widget (JSON, never cached)."""
    settings = current_settings()
    if settings["public.captcha"] != "pow":
        abort(404)
    response = jsonify(captcha.new_challenge(settings, secret_key()))
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/subscribe/<int:list_id>", methods=["GET", "POST"])
@requires(PUBLIC)
def subscribe(list_id: int):
    with db.read(db.get_engine()) as conn:
        try:
            found = optin.public_list(conn, list_id)
        except NotFound:
            abort(404)
    form = optin.form_settings(found)
    if request.method == "GET":
        return _form_page(found, form, {}, None)
    if request.form.get(optin.HONEYPOT):
        return render_template("audience/public_done.html", title=form["title"],
                               message=_("Please check your inbox to confirm."))
    settings = current_settings()
    unsent = {optin.HONEYPOT, captcha.FIELD, *(p.field for p in captcha.PROVIDERS.values())}
    data = {k: v for k, v in request.form.items() if k not in unsent}
    with db.read(db.get_engine()) as conn:
        if optin.too_many_signups(conn, client_ip(), settings["audience.form_signups_per_hour"]):
            return render_template("audience/public_done.html", title=form["title"],
                                   message=_("Too many sign-ups from your network; please try "
                                             "again later.")), 429
    try:
        captcha.verify(settings, secret_key(), request.form, client_ip())
        captcha.check_address(settings, data.get("email", ""))
        with db.write(db.get_engine()) as conn:
            result = optin.subscribe(conn, list_id, data, ip=client_ip(), user_agent=_ua(),
                                     form=request.form.get("form_name", "hosted form")[:100])
    except ServiceError as exc:
        return _form_page(found, form, data, exc.translated(), 422)
    if result["action"] == "confirm":
        _enqueue_confirmation(result["subscriber_id"], list_id)
    message = (_("Thank you, you are subscribed.") if result["action"] in ("subscribed", "already")
               and found["optin"] == "single" else _("Please check your inbox to confirm."))
    return render_template("audience/public_done.html", title=form["title"], message=message)


@blueprint.route("/confirm/<token>", methods=["GET", "POST"])
@requires(PUBLIC)
def confirm(token: str):
    """GET shows a button (link scanners must not confirm for people); POST confirms."""
    settings = current_settings()
    try:
        subscriber_id, list_id = links.read_confirm(settings, token)
    except links.LinkError as exc:
        return render_template("audience/public_done.html", title=_("Confirmation"),
                               message=_("This confirmation link has expired. Please subscribe again.")
                               if exc.expired else _("This link is not valid.")), 400 if not exc.expired else 410
    if request.method == "GET":
        return render_template("audience/public_confirm.html", token=token)
    try:
        with db.write(db.get_engine()) as conn:
            found = optin.confirm(conn, subscriber_id, list_id, ip=client_ip(), user_agent=_ua())
    except NotFound:
        abort(404)
    return render_template("audience/public_done.html", title=_("Confirmed"),
                           message=_("Thank you! Your subscription to %(name)s is confirmed.",
                                     name=found["name"]))


def _read_unsubscribe(token: str):
    try:
        return links.read_unsubscribe(current_settings(), token)
    except links.LinkError:
        abort(404)


@blueprint.route("/u/<token>", methods=["GET", "POST"])
@requires(PUBLIC)
def unsubscribe_page(token: str):
    subscriber_id, list_id, campaign_id = _read_unsubscribe(token)
    if request.method == "POST":
        one_click = request.form.get("List-Unsubscribe") == "One-Click"
        scope_all = one_click and list_id is None or request.form.get("scope") == "all"
        try:
            with db.write(db.get_engine()) as conn:
                unsubscribe(conn, subscriber_id, None if scope_all else list_id, campaign_id,
                            ip=client_ip(), user_agent=_ua(),
                            form="one-click" if one_click else "unsubscribe page")
        except NotFound:
            if one_click:
                return Response("unsubscribed\n", mimetype="text/plain")
            abort(404)
        if one_click:
            return Response("unsubscribed\n", mimetype="text/plain")
        return render_template("audience/public_done.html", title=_("Unsubscribed"),
                               message=_("You will not receive these emails any more.") if not scope_all
                               else _("You will not receive any emails from us any more."),
                               preferences=links.preferences_url(current_settings(), subscriber_id))
    with db.read(db.get_engine()) as conn:
        try:
            person = get_subscriber(conn, subscriber_id)
        except NotFound:
            abort(404)
        lst = next((m for m in person["lists"] if m["list_id"] == list_id), None)
    return render_template("audience/public_unsubscribe.html", token=token, lst=lst,
                           email=person["email"],
                           preferences=links.preferences_url(current_settings(), subscriber_id))


@blueprint.route("/preferences/<token>", methods=["GET", "POST"])
@requires(PUBLIC)
def preferences(token: str):
    try:
        subscriber_id = links.read_preferences(current_settings(), token)
    except links.LinkError:
        abort(404)
    engine = db.get_engine()
    saved = False
    if request.method == "POST":
        wanted = {int(v) for v in request.form.getlist("list") if v.isdigit()}
        with db.write(engine) as conn:
            person = get_subscriber(conn, subscriber_id)
            current = {m["list_id"]: m["status"] for m in person["lists"]}
            public = {lst["id"] for lst in list_lists(conn, counts=False)
                      if lst["visibility"] == "public"}
            for list_id in (public | set(current)):
                if list_id in wanted and current.get(list_id) != "confirmed" and list_id in public:
                    lift_self_unsubscribe(conn, person["email"])
                    set_membership(conn, subscriber_id, list_id, "confirmed")
                    record_consent(conn, subscriber_id, list_id, "subscribe", ip=client_ip(),
                                   user_agent=_ua(), form="preference center")
                elif list_id not in wanted and current.get(list_id) in ("confirmed", "unconfirmed"):
                    unsubscribe(conn, subscriber_id, list_id, ip=client_ip(), user_agent=_ua(),
                                form="preference center")
            if request.form.get("scope") == "all":
                unsubscribe(conn, subscriber_id, None, ip=client_ip(), user_agent=_ua(),
                            form="preference center")
        saved = True
    with db.read(engine) as conn:
        try:
            person = get_subscriber(conn, subscriber_id)
        except NotFound:
            abort(404)
        status = {m["list_id"]: m["status"] for m in person["lists"]}
        shown = [lst for lst in list_lists(conn, counts=False)
                 if lst["visibility"] == "public" or lst["id"] in status]
    return render_template("audience/public_preferences.html", person=person, lists=shown,
                           status=status, saved=saved)
