"""create_app(settings): the one place the application is assembled. It only wires things up:
no migrations, prompts or network calls here (the CLI does those)."""
from __future__ import annotations

import ipaddress
from datetime import timedelta

from flask import Flask, Response, abort, g, redirect, render_template, request, session, url_for
from flask_babel import Babel
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from altkraft_onprem import db, metrics, reactions
from altkraft_onprem.access import scope
from altkraft_onprem.access import service as access
from altkraft_onprem.access.http import client_ip
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.policy import PUBLIC, SIGNED_IN, authorize, check_declared, declared
from altkraft_onprem.access.views import SESSION_KEY, SSO_KEY
from altkraft_onprem.api import (
    BUSY_RETRY_SECONDS,
    MAX_ID,
    handle_api_error,
    is_bad_value_for_storage,
    problem,
)
from altkraft_onprem.api import blueprint as api_blueprint
from altkraft_onprem.config import LAYER, Settings, current_settings, read_secret_key
from altkraft_onprem.deliverability import settings_store
from altkraft_onprem.errors import Forbidden, ServiceError
from altkraft_onprem.route_permission import serves_limited_roles, takes_bearer

LOCALES = ("en", "ru")


def _blueprints():
    """Every UI blueprint and every module that declares API operations."""
    import altkraft_onprem.access.api  # noqa: F401  (declares API operations)
    import altkraft_onprem.access.views_sso  # noqa: F401  (routes on the access blueprint)
    import altkraft_onprem.access.views_twofactor  # noqa: F401  (routes on the access blueprint)
    import altkraft_onprem.audience.api  # noqa: F401
    import altkraft_onprem.audience.api_export  # noqa: F401
    import altkraft_onprem.audience.api_segments  # noqa: F401
    import altkraft_onprem.audience.api_suppressions  # noqa: F401
    import altkraft_onprem.audience.importer.api  # noqa: F401
    import altkraft_onprem.audience.views_people  # noqa: F401  (routes on the audience blueprint)
    import altkraft_onprem.audience.views_segments  # noqa: F401
    import altkraft_onprem.automation.api_webhooks  # noqa: F401
    import altkraft_onprem.automation.api_workflows  # noqa: F401
    import altkraft_onprem.campaigns.api  # noqa: F401
    import altkraft_onprem.campaigns.api_transactional  # noqa: F401
    import altkraft_onprem.deliverability.api  # noqa: F401
    import altkraft_onprem.deliverability.api_checks  # noqa: F401
    import altkraft_onprem.deliverability.api_compliance  # noqa: F401
    import altkraft_onprem.deliverability.api_presend  # noqa: F401
    import altkraft_onprem.deliverability.views_domains  # noqa: F401  (routes on the settings blueprint)
    import altkraft_onprem.deliverability.views_presend  # noqa: F401  (routes on the deliverability blueprint)
    import altkraft_onprem.inbound.api  # noqa: F401
    import altkraft_onprem.messages.api  # noqa: F401
    import altkraft_onprem.messages.api_library  # noqa: F401
    import altkraft_onprem.reports.api  # noqa: F401
    import altkraft_onprem.reports.views_transactional  # noqa: F401  (routes on the reports blueprint)
    from altkraft_onprem.access.views import blueprint as access_views
    from altkraft_onprem.audience.importer.views import blueprint as import_views
    from altkraft_onprem.audience.public import blueprint as audience_public
    from altkraft_onprem.audience.views import blueprint as audience_views
    from altkraft_onprem.automation.views import blueprint as automation_views
    from altkraft_onprem.campaigns.views import blueprint as campaigns_views
    from altkraft_onprem.deliverability.views import blueprint as settings_views
    from altkraft_onprem.deliverability.views_checks import blueprint as deliverability_views
    from altkraft_onprem.inbound.hooks import blueprint as inbound_hooks
    from altkraft_onprem.inbound.views import blueprint as inbound_views
    from altkraft_onprem.messages.views import blueprint as messages_views
    from altkraft_onprem.reports.views import blueprint as reports_views
    from altkraft_onprem.sending.archive import blueprint as archive_pages
    from altkraft_onprem.sending.webview import blueprint as webview
    from altkraft_onprem.tracking.views import blueprint as tracking_views
    from altkraft_onprem.web.views import blueprint as web_views

    return [web_views, access_views, tracking_views, reports_views, messages_views, deliverability_views,
            campaigns_views, audience_views, audience_public, import_views, webview, archive_pages,
            inbound_views,
            inbound_hooks, automation_views, settings_views,
            api_blueprint]


def create_app(settings: Settings, *, engine: Engine | None = None) -> Flask:
    app = Flask(__name__, static_folder=None, template_folder="web/templates")
    app.config.update(
        ALTKRAFT_SETTINGS=settings,
        SECRET_KEY=read_secret_key(settings),
        SESSION_COOKIE_NAME="altkraft_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.https,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings["security.session_hours"]),
        WTF_CSRF_TIME_LIMIT=None,          # bound to the session instead, which expires
        WTF_CSRF_SSL_STRICT=settings.https,
        MAX_CONTENT_LENGTH=512 * 1024 * 1024,
        BABEL_DEFAULT_LOCALE=settings["i18n.default_locale"],
        JSON_SORT_KEYS=False,
    )
    if settings["server.trusted_proxies"]:
        hops = settings["server.trusted_proxies"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    engine = engine or db.build_engine(
        settings.database_url, pool_size=settings["database.pool_size"],
        busy_timeout_ms=settings["database.busy_timeout_ms"])
    db.init_app(app, engine)
    # Settings made on the Settings page, layered over the file's (current_settings()).
    app.extensions[LAYER] = lambda base: settings_store.effective(base, engine)
    Babel(app, locale_selector=_select_locale)
    csrf = CSRFProtect(app)
    csrf.exempt(api_blueprint)   # bearer tokens are not sent by browsers on their own
    metrics.init_app(app)
    reactions.connect_all()

    for blueprint in _blueprints():
        app.register_blueprint(blueprint)
        if getattr(blueprint, "csrf_exempt", False):   # signed-link public pages (/p/)
            csrf.exempt(blueprint)
    _install_guard(app)
    _install_error_pages(app)
    _install_security_headers(app)
    check_declared(app)
    return app


def _select_locale() -> str:
    actor = g.get("actor")
    if actor is not None and actor.locale in LOCALES:
        return actor.locale
    return request.accept_languages.best_match(LOCALES) or current_settings()["i18n.default_locale"]


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def _install_guard(app: Flask) -> None:
    @app.before_request
    def guard():
        g.actor = None
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        if view is None:
            return None                          # 404 / 405 follow
        if _id_out_of_range(request.view_args):
            abort(404)
        permission = declared(view)
        api = is_api_request() or takes_bearer(view)
        g.actor = _actor_from_token() if api else _actor_from_session()
        if permission == PUBLIC:
            return None
        if g.actor is None and permission == METRICS_PERMISSION:
            g.actor = _actor_from_network(client_ip())
        if g.actor is None:
            if api:
                return problem(401, "Unauthorized", "send Authorization: Bearer <token>")
            return redirect(url_for("access.login", next=request.full_path.rstrip("?")))
        if (g.actor.must_enrol and not api and request.endpoint not in ENROL_ENDPOINTS
                and not session.get(SSO_KEY)):     # single sign-on: the provider's factors apply
            # The role requires a second factor this signed-in user does not have yet.
            return redirect(url_for("access.two_factor"))
        try:
            authorize(g.actor, permission)
        except Forbidden as exc:
            if api:
                return problem(403, "Forbidden", exc.translated())
            message = _("Your role (%(role)s) does not allow this (%(permission)s).",
                        role=g.actor.role, permission=permission)
            return render_template("web/error.html", status=403, message=message), 403
        if scope.limited(g.actor) and permission != SIGNED_IN:
            return _keep_to_lists(view, api)
        return None


def _keep_to_lists(view, api: bool):
    """A role limited to some lists (access/scope.py): only routes that keep to lists, and
    only objects of its lists (others answer 404, as if they did not exist)."""
    if not serves_limited_roles(view):
        message = _("Your role (%(role)s) is limited to some lists; this covers every list.",
                    role=g.actor.role)
        if api:
            return problem(403, "Forbidden", message)
        return render_template("web/error.html", status=403, message=message), 403
    with db.read(db.get_engine()) as conn:
        hidden = scope.hidden_object(conn, g.actor, request.view_args)
    if hidden is None:
        return None
    if api:
        return problem(404, "Not Found", _("There is no such object."))
    return render_template("web/error.html", status=404,
                           message=_("There is no page at this address.")), 404


def _id_out_of_range(view_args: dict | None) -> bool:
    """Ids are INTEGER columns: /users/99999999999 is simply not there (not an overflow)."""
    return any(isinstance(v, int) and not 0 <= v <= MAX_ID for v in (view_args or {}).values())


def _actor_from_token():
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return None
    engine = db.get_engine()
    with db.read(engine) as conn:
        found = access.resolve_token(conn, secret.strip(), client_ip())
    if found is None:
        return None
    actor, touch = found
    if touch is not None:
        with db.write(engine) as conn:
            access.touch_token(conn, touch)
    return actor


METRICS_PERMISSION = "metrics:read"
# What a signed-in user whose role requires two-factor sign-in may open before enrolling.
ENROL_ENDPOINTS = {"access.two_factor", "access.logout"}


def _actor_from_network(ip: str):
    """A scraper allowed by its address (`server.metrics_allowed_networks`): metrics only."""
    networks = current_settings()["server.metrics_allowed_networks"]
    if not networks or not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    address = getattr(address, "ipv4_mapped", None) or address     # ::ffff:10.0.0.1
    if not any(address in ipaddress.ip_network(n, strict=False) for n in networks):
        return None
    return Actor(user_id=None, label=f"address {ip}", permissions=frozenset({METRICS_PERMISSION}),
                 ip=ip, role="metrics_allowed_networks")


def _actor_from_session():
    session_id = session.get(SESSION_KEY)
    if not isinstance(session_id, str):
        return None
    engine = db.get_engine()
    settings = current_settings()
    with db.read(engine) as conn:
        found = access.resolve_session(conn, session_id, timedelta(hours=settings["security.session_hours"]),
                                       client_ip())
    if found is None:
        session.pop(SESSION_KEY, None)
        return None
    actor, touch = found
    if touch is not None:
        with db.write(engine) as conn:
            access.touch_session(conn, touch)
    return actor


def _install_error_pages(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        if is_api_request():
            return handle_api_error(exc)
        return render_template("web/error.html", status=exc.status, message=exc.translated()), exc.status

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_template("web/error.html", status=400,
                               message=_("The form expired or was not sent by this site; "
                                         "reload the page and try again.")), 400

    @app.errorhandler(Exception)
    def any_error(exc: Exception):
        from werkzeug.exceptions import HTTPException

        if is_api_request():
            return handle_api_error(exc)
        if isinstance(exc, HTTPException):
            plain = {404: _("There is no page at this address."),
                     405: _("This page does not accept this kind of request.")}
            return render_template("web/error.html", status=exc.code,
                                   message=plain.get(exc.code, exc.description)), exc.code
        if db.is_busy(exc):
            app.logger.warning("database busy on %s %s: answered 503", request.method, request.path)
            page = render_template("web/error.html", status=503, message=_(
                "The database is busy; nothing was changed. Try again in a moment."))
            return page, 503, {"Retry-After": str(BUSY_RETRY_SECONDS)}
        if is_bad_value_for_storage(exc):
            return render_template("web/error.html", status=422,
                                   message=_("A value is out of range for its field.")), 422
        app.logger.exception("error on %s %s", request.method, request.path)
        return render_template("web/error.html", status=500,
                               message=_("Something went wrong; the error was logged.")), 500


CSP = ("default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; frame-src 'self' blob:; frame-ancestors 'self'; base-uri 'self'; "
       "form-action 'self'; object-src 'none'")


def _install_security_headers(app: Flask) -> None:
    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
            response.headers.setdefault("Cache-Control", "no-store")
        return response
