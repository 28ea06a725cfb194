"""UI routes: login/logout, first-run setup, profile, users, roles, tokens, audit log."""
from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from altkraft_onprem import db, extensions
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.i18n import N_

from . import service
from .http import client_ip, login_limits
from .models import BUILTIN_ROLES, PERMISSIONS
from .policy import PUBLIC, SIGNED_IN, requires

blueprint = Blueprint("access", __name__)

# The built-in roles' names as people read them; the API and CLI keep the English names.
BUILTIN_ROLE_LABELS = (N_("Administrator"), N_("Manager"), N_("Editor"), N_("Analyst"), N_("Viewer"))


@blueprint.app_template_filter("role_label")
def role_label(name: str) -> str:
    """A built-in role's name in the user's language; custom roles as their creator named them."""
    return _(name) if name in BUILTIN_ROLES else name
SESSION_KEY = "sid"
SSO_KEY = "sso"     # set in a session opened by single sign-on (the provider's own factors apply)


def start_session(user_id: int) -> None:
    with db.write(db.get_engine()) as conn:
        session_id = service.open_session(conn, user_id, client_ip(), request.user_agent.string or "")
    session.clear()                         # a fresh cookie (and CSRF secret) per login
    session.permanent = True
    session[SESSION_KEY] = session_id


PENDING_KEY = "pending_2fa"
PENDING_SECONDS = 600     # between the password and the second factor


def begin_second_step(user_id: int, next_url: str) -> None:
    """The password was right; the user id waits in the signed session cookie (no session
    yet) for the second factor, for PENDING_SECONDS."""
    session.clear()
    session[PENDING_KEY] = {"user_id": user_id, "until": int(time.time()) + PENDING_SECONDS,
                            "next": next_url}


def pending_sign_in() -> dict | None:
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        session.pop(PENDING_KEY, None)
        return None
    return pending


def safe_next(target: str | None, fallback: str) -> str:
    """Only same-site relative paths: no open redirects through ?next=."""
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return fallback
    return target


@blueprint.route("/login", methods=["GET", "POST"])
@requires(PUBLIC)
def login():
    next_url = safe_next(request.values.get("next"), url_for("web.dashboard"))
    with db.read(db.get_engine()) as conn:
        if service.setup_needed(conn):
            return render_template("access/setup_pending.html")
    error = None
    if request.method == "POST":
        try:
            with db.write(db.get_engine()) as conn:
                user_id = service.authenticate(
                    conn, request.form.get("email", ""), request.form.get("password", ""), client_ip(),
                    **login_limits())
        except ServiceError as exc:
            return render_template("access/login.html", error=_("Too many failed logins; try again later."),
                                   next=next_url, email=request.form.get("email", "")), exc.status
        if user_id is None:
            return render_template("access/login.html", error=_("Wrong email or password."),
                                   next=next_url, email=request.form.get("email", "")), 403
        with db.read(db.get_engine()) as conn:
            step = service.sign_in_step(conn, user_id)
        if step is not None:       # a second factor first: views_twofactor.py
            begin_second_step(user_id, next_url)
            return redirect(url_for("access.sign_in_code" if step == "code" else "access.sign_in_enrol"))
        start_session(user_id)
        return redirect(next_url)
    return render_template("access/login.html", error=error, next=next_url, email="")


@blueprint.route("/logout", methods=["POST"])
@requires(PUBLIC)
def logout():
    session_id = session.get(SESSION_KEY)
    if isinstance(session_id, str):
        with db.write(db.get_engine()) as conn:
            service.close_session(conn, session_id)
    session.clear()
    return redirect(url_for("access.login"))


@blueprint.route("/setup/<token>", methods=["GET", "POST"])
@requires(PUBLIC)
def setup(token: str):
    with db.read(db.get_engine()) as conn:
        valid = service.setup_token_valid(conn, token)
    if not valid:
        return render_template("web/error.html", status=404,
                               message=_("This setup link is not valid any more.")), 404
    error = None
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password2"):
            error = _("The two passwords differ.")
        else:
            try:
                with db.write(db.get_engine()) as conn:
                    user_id = service.complete_setup(
                        conn, token, request.form.get("email", ""), request.form.get("password", ""),
                        request.form.get("name", ""), client_ip())
            except ServiceError as exc:
                error = exc.translated()
            else:
                start_session(user_id)
                flash(_("Welcome! Your administrator account is ready."), "success")
                return redirect(url_for("web.dashboard"))
    return render_template("access/setup.html", error=error, form=request.form)


@blueprint.route("/profile", methods=["GET", "POST"])
@requires(SIGNED_IN)
def profile():
    error = None
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "locale":
                with db.write(db.get_engine()) as conn:
                    service.update_user(conn, g.actor, g.actor.user_id, locale=request.form.get("locale"))
                flash(_("Language saved."), "success")
                return redirect(url_for("access.profile"))
            if action == "password":
                if not _current_password_ok(request.form.get("current", "")):
                    raise ServiceError("The current password is wrong.", "current")
                if request.form.get("password") != request.form.get("password2"):
                    raise ServiceError("The two passwords differ.", "password2")
                with db.write(db.get_engine()) as conn:
                    service.set_password(conn, g.actor, g.actor.user_id, request.form.get("password", ""))
                session.clear()
                flash(_("Password changed; sign in with the new one."), "success")
                return redirect(url_for("access.login"))
        except ServiceError as exc:
            error = exc.translated()
    with db.read(db.get_engine()) as conn:
        user = service.get_user(conn, g.actor.user_id)
        tokens = service.list_tokens(conn, g.actor.user_id)
    return render_template("access/profile.html", user=user, tokens=tokens, error=error,
                           new_token=session.pop("new_token", None))


def _current_password_ok(password: str) -> bool:
    """Re-checks the signed-in user's password (throttled and recorded like a login)."""
    with db.write(db.get_engine()) as conn:
        email = service.get_user(conn, g.actor.user_id)["email"]
        return service.authenticate(conn, email, password, client_ip(), **login_limits()) is not None


@blueprint.route("/profile/tokens", methods=["POST"])
@requires(SIGNED_IN)
def create_own_token():
    return _create_token(g.actor.user_id, url_for("access.profile"))


def _create_token(user_id: int, back: str):
    try:
        with db.write(db.get_engine()) as conn:
            _, secret = service.create_token(conn, g.actor, user_id, request.form.get("name", ""),
                                             current_settings()["security.api_token_days"])
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(back)
    session["new_token"] = secret    # shown once on the next page, then gone
    return redirect(back)


@blueprint.route("/profile/tokens/<int:token_id>/revoke", methods=["POST"])
@requires(SIGNED_IN)
def revoke_own_token(token_id: int):
    with db.write(db.get_engine()) as conn:
        token = service.get_token(conn, token_id)
        if token["user_id"] != g.actor.user_id:
            raise ServiceError("This token is not yours.")
        service.revoke_token(conn, g.actor, token_id)
    flash(_("Token revoked."), "success")
    return redirect(url_for("access.profile"))


# --- users & roles (users:manage) ----------------------------------------------------------

@blueprint.route("/users", methods=["GET", "POST"])
@requires("users:manage")
def users():
    error = None
    if request.method == "POST":
        try:
            with db.write(db.get_engine()) as conn:
                service.create_user(conn, g.actor, request.form.get("email", ""),
                                    request.form.get("password", ""),
                                    int(request.form.get("role_id") or 0),
                                    request.form.get("name", ""), request.form.get("locale") or None)
        except ServiceError as exc:
            error = exc.translated()
        else:
            flash(_("User created."), "success")
            return redirect(url_for("access.users"))
    with db.read(db.get_engine()) as conn:
        return render_template("access/users.html", users=service.list_users(conn),
                               roles=service.list_roles(conn), tokens=service.list_tokens(conn),
                               error=error, form=request.form,
                               new_token=session.pop("new_token", None))


@blueprint.route("/users/<int:user_id>", methods=["GET", "POST"])
@requires("users:manage")
def edit_user(user_id: int):
    error = None
    if request.method == "POST":
        try:
            with db.write(db.get_engine()) as conn:
                service.update_user(conn, g.actor, user_id, name=request.form.get("name"),
                                    role_id=int(request.form.get("role_id") or 0) or None,
                                    is_active=request.form.get("is_active") == "on")
                if request.form.get("password"):
                    service.set_password(conn, g.actor, user_id, request.form["password"])
        except ServiceError as exc:
            error = exc.translated()
        else:
            flash(_("User saved."), "success")
            return redirect(url_for("access.users"))
    with db.read(db.get_engine()) as conn:
        return render_template("access/user_edit.html", user=service.get_user(conn, user_id),
                               roles=service.list_roles(conn),
                               tokens=service.list_tokens(conn, user_id), error=error)


@blueprint.route("/users/<int:user_id>/tokens", methods=["POST"])
@requires("users:manage")
def create_user_token(user_id: int):
    return _create_token(user_id, url_for("access.users"))


@blueprint.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@requires("users:manage")
def revoke_token(token_id: int):
    with db.write(db.get_engine()) as conn:
        service.revoke_token(conn, g.actor, token_id)
    flash(_("Token revoked."), "success")
    return redirect(url_for("access.users"))


@blueprint.route("/roles", methods=["GET", "POST"])
@requires("users:manage")
def roles():
    error = None
    if request.method == "POST":
        try:
            with db.write(db.get_engine()) as conn:
                role_id = request.form.get("role_id")
                perms = request.form.getlist("permissions")
                # No list ticked: every list.
                limit = [int(i) for i in request.form.getlist("lists") if i.isdigit()] or None
                if request.form.get("action") == "delete" and role_id:
                    service.delete_role(conn, g.actor, int(role_id))
                elif role_id:
                    service.update_role(conn, g.actor, int(role_id), name=request.form.get("name"),
                                        permissions=perms, description=request.form.get("description"),
                                        lists=limit)
                else:
                    service.create_role(conn, g.actor, request.form.get("name", ""), perms,
                                        request.form.get("description", ""), lists=limit)
        except (ServiceError, ValueError) as exc:
            error = getattr(exc, "message", str(exc))
        else:
            flash(_("Roles saved."), "success")
            return redirect(url_for("access.roles"))
    with db.read(db.get_engine()) as conn:
        return render_template("access/roles.html", roles=service.list_roles(conn),
                               permissions=PERMISSIONS, error=error,
                               list_names=extensions.LIST_NAMES.ask(conn))


# --- audit log -----------------------------------------------------------------------------

def _audit_filters() -> dict:
    def day(name: str):
        try:
            return datetime.fromisoformat(request.args[name]) if request.args.get(name) else None
        except ValueError:
            return None
    return {"actor": request.args.get("actor") or None, "action": request.args.get("action") or None,
            "since": day("since"), "until": day("until")}


@blueprint.route("/audit")
@requires("audit:read")
def audit():
    page = max(1, request.args.get("page", 1, type=int))
    with db.read(db.get_engine()) as conn:
        entries = service.audit_entries(conn, limit=101, offset=(page - 1) * 100, **_audit_filters())
    return render_template("access/audit.html", entries=entries[:100], page=page,
                           more=len(entries) > 100, args=request.args)


@blueprint.route("/audit.csv")
@requires("audit:read")
def audit_csv():
    with db.read(db.get_engine()) as conn:
        entries = service.audit_entries(conn, limit=100_000, **_audit_filters())
    return Response(service.audit_csv(entries), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=audit-log.csv"})
