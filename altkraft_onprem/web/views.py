"""The UI shell: dashboard, placeholder pages for areas not built yet, health, metrics, static."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, render_template, send_from_directory
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import text

from altkraft_onprem import db, jobqueue, metrics
from altkraft_onprem.access import scope
from altkraft_onprem.access.policy import PUBLIC, keeps_to_lists, requires
from altkraft_onprem.route_permission import bearer, serves_limited_roles

from .nav import NAV

blueprint = Blueprint("web", __name__)
STATIC = Path(__file__).with_name("static")


@blueprint.app_context_processor
def navigation():
    actor = g.get("actor")
    items = [item for item in NAV if actor is not None and actor.can(item.permission)]
    if scope.limited(actor):        # a role limited to some lists: only the areas that keep to them
        items = [item for item in items if serves_limited_roles(current_app.view_functions[item.endpoint])]
    return {"nav_items": items, "actor": actor, "csrf_field": csrf_field, "get_locale": get_locale}


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(generate_csrf())


@blueprint.route("/")
@requires("dashboard:read")
@keeps_to_lists
def dashboard():
    return render_template("web/dashboard.html")


def _placeholder(slug: str, permission: str, title: str, what: str):
    @requires(permission)
    def page():
        return render_template("web/placeholder.html", title=_(title), what=_(what))
    page.__name__ = f"area_{slug}"
    blueprint.add_url_rule(f"/{slug}", endpoint=f"area_{slug}", view_func=page)


# Areas not built yet: the page says so plainly (N_: translated when shown), and so do the
# descriptions of their permissions (access/models.py; a test holds them together).
PLACEHOLDER_AREAS: tuple[tuple[str, str, str, str], ...] = ()
for _slug, _perm, _title, _what in PLACEHOLDER_AREAS:
    _placeholder(_slug, _perm, _title, _what)


@blueprint.route("/static/<path:filename>")
@requires(PUBLIC)
def static(filename: str):
    return send_from_directory(STATIC, filename, max_age=3600)


@blueprint.route("/healthz")
@requires(PUBLIC)
def healthz():
    return jsonify(status="ok")


@blueprint.route("/readyz")
@requires(PUBLIC)
def readyz():
    checks = {}
    try:
        with db.read(db.get_engine()) as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        jobqueue.queue_depth()
        checks["queue"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["queue"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503


@blueprint.route("/metrics")
@requires("metrics:read")
@bearer
def prometheus():
    """For an API token with metrics:read, or an address in server.metrics_allowed_networks
    (the guard in app.py decides)."""
    try:
        depth = jobqueue.queue_depth()
    except Exception:  # noqa: BLE001 - the queue being down must not hide the other metrics
        depth = None
    return metrics.render(depth)
