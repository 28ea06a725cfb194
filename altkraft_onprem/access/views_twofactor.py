"""UI routes of two-factor sign-in: the code after the password, enrolment (at sign-in when the
role requires it, or from the profile), recovery codes, and the administrators' controls (a
user's reset, the roles that require it). Routes on the access blueprint."""
from __future__ import annotations

import segno
from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.errors import ServiceError

from . import service
from .http import client_ip, confirm_enrolment, login_limits, secret_key, with_own_code
from .policy import PUBLIC, SIGNED_IN, requires
from .views import blueprint, pending_sign_in, start_session


def qr_code(uri: str) -> str:
    """The otpauth address as an SVG data URI (the page's CSP allows data: images)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _enrolment_page(template: str, user_id: int, email: str, **context):
    """The QR code and the secret of the waiting enrolment (started now if none waits)."""
    with db.write(db.get_engine()) as conn:
        secret = (service.pending_secret(conn, user_id, secret_key())
                  or service.begin_enrolment(conn, user_id, secret_key()))
    uri = service.provisioning_uri(secret, email)
    spaced = " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))
    return render_template(template, qr=qr_code(uri), secret=spaced, uri=uri, **context)


# --- signing in ----------------------------------------------------------------------------

@blueprint.route("/login/code", methods=["GET", "POST"])
@requires(PUBLIC)
def sign_in_code():
    pending = pending_sign_in()
    if pending is None:
        return redirect(url_for("access.login"))
    error = None
    if request.method == "POST":
        try:
            with db.write(db.get_engine()) as conn:
                outcome = service.verify_sign_in_code(
                    conn, pending["user_id"], request.form.get("code", ""), client_ip(), secret_key(),
                    **login_limits())
                left = (service.recovery_codes_left(conn, pending["user_id"])
                        if outcome == "recovery" else None)
        except ServiceError as exc:
            return render_template("access/login_code.html", error=exc.translated()), exc.status
        if outcome is None:
            return render_template("access/login_code.html", error=_("That code is not right.")), 403
        start_session(pending["user_id"])
        if outcome == "recovery":
            flash(ngettext("You signed in with a recovery code; %(num)s is left. Make new ones "
                           "under Your profile.",
                           "You signed in with a recovery code; %(num)s are left. Make new ones "
                           "under Your profile.", left), "warning")
        return redirect(pending["next"])
    return render_template("access/login_code.html", error=error)


@blueprint.route("/login/enrol", methods=["GET", "POST"])
@requires(PUBLIC)
def sign_in_enrol():
    """A role that requires two-factor sign-in, a user without it: enrol before the session."""
    pending = pending_sign_in()
    if pending is None:
        return redirect(url_for("access.login"))
    user_id = pending["user_id"]
    with db.read(db.get_engine()) as conn:
        actor = service.actor_for_user(conn, user_id, ip=client_ip())
    error, status = None, 200
    if request.method == "POST":
        try:
            codes = confirm_enrolment(actor, user_id, request.form.get("code", ""))
        except ServiceError as exc:
            error, status = exc.translated(), exc.status
        else:
            start_session(user_id)          # a fresh session cookie: the pending step is gone
            return render_template("access/recovery_codes.html", codes=codes, next=pending["next"])
    return _enrolment_page("access/login_enrol.html", user_id, actor.label, error=error), status


# --- the user's own second factor --------------------------------------------------------------

@blueprint.route("/profile/two-factor", methods=["GET", "POST"])
@requires(SIGNED_IN)
def two_factor():
    user_id = g.actor.user_id
    error, status = None, 200
    if request.method == "POST":
        action = request.form.get("action")
        code = request.form.get("code", "")
        try:
            if action == "confirm":
                codes = confirm_enrolment(g.actor, user_id, code)
            elif action == "recovery":
                codes = with_own_code(user_id, code, lambda conn: service.new_recovery_codes(
                    conn, g.actor, user_id))
            elif action == "disable":
                codes = with_own_code(user_id, code, lambda conn: service.disable_two_factor(
                    conn, g.actor, user_id))
            else:
                raise ServiceError("unknown action %(action)s", "action", action=repr(action))
        except ServiceError as exc:
            error, status = exc.translated(), exc.status
        else:
            if action == "confirm":
                start_session(user_id)     # every other session ended with the enrolment
            if codes is not None:
                return render_template("access/recovery_codes.html", codes=codes,
                                       next=url_for("access.two_factor"))
            flash(_("Two-factor sign-in is off."), "success")
            return redirect(url_for("access.two_factor"))
    with db.read(db.get_engine()) as conn:
        state = service.two_factor_status(conn, user_id)
    if not state["enabled"]:
        return _enrolment_page("access/two_factor.html", user_id, g.actor.label, state=state,
                               error=error), status
    return render_template("access/two_factor.html", state=state, error=error), status


# --- administrators ---------------------------------------------------------------------------

@blueprint.route("/users/<int:user_id>/two-factor/reset", methods=["POST"])
@requires("users:manage")
def reset_two_factor(user_id: int):
    with db.write(db.get_engine()) as conn:
        service.reset_two_factor(conn, g.actor, user_id)
    flash(_("Two-factor sign-in of this user was reset; their sessions ended."), "success")
    return redirect(url_for("access.edit_user", user_id=user_id))


@blueprint.route("/roles/two-factor", methods=["POST"])
@requires("users:manage")
def roles_two_factor():
    required = set(request.form.getlist("required"))
    with db.write(db.get_engine()) as conn:
        for role in service.list_roles(conn):
            service.set_role_requirement(conn, g.actor, role["id"], str(role["id"]) in required)
    flash(_("Roles saved."), "success")
    return redirect(url_for("access.roles"))
