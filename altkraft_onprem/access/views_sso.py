"""UI routes of single sign-on with OpenID Connect, through authlib's Flask client: the
authorization code flow with discovery, state and nonce; authlib checks the ID token
(signature against the provider's keys, issuer, audience, expiry, nonce). Off unless
`oidc.issuer` is set. Routes on the access blueprint."""
from __future__ import annotations

from pathlib import Path

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError

from .http import client_ip
from .policy import PUBLIC, requires
from .sso import user_for_claims
from .views import SSO_KEY, blueprint, safe_next, start_session

CLIENTS = "altkraft.oidc_clients"
NEXT_KEY = "sso_next"


def enabled() -> bool:
    return bool(current_settings()["oidc.issuer"])


@blueprint.app_context_processor
def sign_in_options() -> dict:
    return {"sso_enabled": enabled()}


def _client_secret(settings) -> str:
    path = settings["oidc.client_secret_file"]
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        current_app.logger.error("oidc.client_secret_file %s cannot be read: %s", path, exc)
        raise _Unavailable() from None


class _Unavailable(Exception):
    """Single sign-on is set up wrongly or the provider cannot be reached (logged)."""


def _client():
    """authlib's client for the configured provider, made once per configuration (the
    provider's metadata is fetched on first use, not here)."""
    settings = current_settings()
    key = (settings["oidc.issuer"], settings["oidc.client_id"], _client_secret(settings),
           settings["oidc.scopes"])
    cache = current_app.extensions.setdefault(CLIENTS, {})
    if key not in cache:
        cache.clear()
        oauth = OAuth(current_app._get_current_object())
        cache[key] = oauth.register(
            "sso", client_id=key[1], client_secret=key[2] or None,
            server_metadata_url=key[0] + "/.well-known/openid-configuration",
            client_kwargs={"scope": key[3], "timeout": 10}, overwrite=True)
    return cache[key]


def _refused(message: str, status: int = 403):
    return render_template("web/error.html", status=status, message=message), status


@blueprint.route("/login/sso")
@requires(PUBLIC)
def sso_start():
    if not enabled():
        return _refused(_("Single sign-on is not set up."), 404)
    next_url = safe_next(request.args.get("next"), url_for("web.dashboard"))
    try:
        client = _client()
        response = client.authorize_redirect(url_for("access.sso_callback", _external=True))
    except (_Unavailable, requests.RequestException, OAuthError, ValueError, KeyError) as exc:
        current_app.logger.error("single sign-on: the provider cannot be reached: %s", exc)
        return _refused(_("The single sign-on provider cannot be reached; sign in with your "
                          "password, or try again later."), 502)
    session[NEXT_KEY] = next_url
    return response


@blueprint.route("/login/sso/callback")
@requires(PUBLIC)
def sso_callback():
    if not enabled():
        return _refused(_("Single sign-on is not set up."), 404)
    settings = current_settings()
    try:
        client = _client()
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if "email" not in claims:
            claims.update(client.userinfo(token=token))
    except OAuthError as exc:
        current_app.logger.warning("single sign-on refused: %s", exc)
        return _refused(_("Single sign-on did not succeed (%(reason)s); try again.",
                          reason=exc.error or "error"))
    except (_Unavailable, requests.RequestException) as exc:
        current_app.logger.error("single sign-on: the provider cannot be reached: %s", exc)
        return _refused(_("The single sign-on provider cannot be reached; sign in with your "
                          "password, or try again later."), 502)
    except Exception as exc:  # noqa: BLE001 - an ID token that fails any check (joserfc's or authlib's errors) signs nobody in
        current_app.logger.warning("single sign-on: the ID token did not check out: %r", exc)
        return _refused(_("The single sign-on provider's answer did not check out; nobody was "
                          "signed in."))
    try:
        with db.write(db.get_engine()) as conn:
            user_id = user_for_claims(
                conn, claims, issuer=settings["oidc.issuer"], ip=client_ip(),
                allowed_domains=settings["oidc.allowed_domains"], create=settings["oidc.create_users"],
                default_role=settings["oidc.default_role"])
    except ServiceError as exc:
        return _refused(exc.translated(), exc.status)
    next_url = session.get(NEXT_KEY) or url_for("web.dashboard")
    start_session(user_id)
    session[SSO_KEY] = True
    return redirect(safe_next(next_url, url_for("web.dashboard")))
