"""Audience UI: lists (with the hosted form, its snippet and exports) and custom fields.
Subscribers, segments, suppression and trash pages are in views_people.py and
views_segments.py on the same blueprint (app.py imports them)."""
from __future__ import annotations

import re

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.access.policy import keeps_to_lists, requires
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError

from . import export, lists, optin
from . import fields as field_service
from .downloads import download
from .models import FIELD_TYPES, MEMBER_STATUSES

blueprint = Blueprint("audience", __name__, url_prefix="/audience")


FIELD_LABELS = {
    "email": _l("Email"), "first_name": _l("First name"), "last_name": _l("Last name"),
    "phone": _l("Phone"), "gender": _l("Gender"), "birth_date": _l("Birth date"),
    "company": _l("Company"), "city": _l("City"), "region": _l("Region"),
    "country": _l("Country"), "language": _l("Language"), "timezone": _l("Time zone"),
}


def field_label(name: str) -> str:
    """A standard field's name in the reader's language (others as they are)."""
    return FIELD_LABELS.get(name) or name.replace("_", " ").capitalize()


@blueprint.app_context_processor
def audience_tabs():
    return {"has_importer": "importer.index" in current_app.view_functions,
            "field_label": field_label}


def engine():
    return db.get_engine()


def form_list(name: str) -> list[str]:
    return [v for v in request.form.getlist(name) if v]


# --- lists ------------------------------------------------------------------------------------

@blueprint.route("/")
@requires("lists:read")
@keeps_to_lists
def index():
    with db.read(engine()) as conn:
        return render_template("audience/lists.html", lists=lists.list_lists(conn, only=scope.only(g.actor)),
                               error=None,
                               form={}, default_optin=current_settings()["audience.default_optin"])


@blueprint.route("/lists", methods=["POST"])
@requires("lists:write")
def create_list():
    form = request.form
    try:
        with db.write(engine()) as conn:
            list_id = lists.create_list(
                conn, g.actor, form.get("name", ""),
                optin=form.get("optin") or current_settings()["audience.default_optin"],
                visibility=form.get("visibility", "private"),
                tags=[t for t in form.get("tags", "").split(",") if t.strip()],
                description=form.get("description", ""))
    except ServiceError as exc:
        with db.read(engine()) as conn:
            return render_template("audience/lists.html", lists=lists.list_lists(conn),
                                   error=exc.translated(), form=form,
                                   default_optin=current_settings()["audience.default_optin"]), 422
    flash(_("List created."), "success")
    return redirect(url_for("audience.list_page", list_id=list_id))


@blueprint.route("/lists/<int:list_id>")
@requires("lists:read")
@keeps_to_lists
def list_page(list_id: int):
    with db.read(engine()) as conn:
        found = lists.get_list(conn, list_id)
        available = export.available_fields(conn)
    settings = current_settings()
    slug = found["archive_slug"] or _suggested_slug(found)
    return render_template("audience/list.html", lst=found, form=optin.form_settings(found),
                           archive_slug=slug,
                           archive_url=f"{settings['server.public_url'].rstrip('/')}/archive/{slug}",
                           form_fields=optin.FORM_FIELDS, statuses=MEMBER_STATUSES,
                           export_fields=available, error=None,
                           form_url=f"{settings['server.public_url']}/p/subscribe/{list_id}",
                           honeypot=optin.HONEYPOT)


def _suggested_slug(found: dict) -> str:
    """An archive address to offer for a list without one: its name in lower-case ASCII
    letters and digits, else list-ID."""
    slug = re.sub(r"[^a-z0-9]+", "-", found["name"].lower()).strip("-")[:64].strip("-")
    return slug or f"list-{found['id']}"


@blueprint.route("/lists/<int:list_id>/edit", methods=["POST"])
@requires("lists:write")
@keeps_to_lists
def edit_list(list_id: int):
    form = request.form
    try:
        with db.write(engine()) as conn:
            found = lists.get_list(conn, list_id, counts=False)
            settings = optin.form_settings(found)
            settings.update({
                "fields": [f for f in form_list("form_fields") if f in optin.FORM_FIELDS],
                "title": form.get("form_title", "").strip() or found["name"],
                "confirm_subject": form.get("confirm_subject", settings["confirm_subject"])[:300],
                "confirm_html": form.get("confirm_html", settings["confirm_html"])[:50_000],
                "confirm_text": form.get("confirm_text", settings["confirm_text"])[:50_000],
                "from_email": form.get("from_email", "").strip()[:320],
                "from_name": form.get("from_name", "").strip()[:200]})
            lists.update_list(conn, g.actor, list_id, name=form.get("name"),
                              optin=form.get("optin"), visibility=form.get("visibility"),
                              description=form.get("description"),
                              tags=[t for t in form.get("tags", "").split(",") if t.strip()],
                              form=settings,
                              archive_slug=form.get("archive_slug", "") if form.get("archive_on") == "on"
                              else None)
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(url_for("audience.list_page", list_id=list_id))
    flash(_("List saved."), "success")
    return redirect(url_for("audience.list_page", list_id=list_id))


@blueprint.route("/lists/<int:list_id>/delete", methods=["POST"])
@requires("lists:write")
@keeps_to_lists
def delete_list(list_id: int):
    with db.write(engine()) as conn:
        lists.delete_list(conn, g.actor, list_id)
    flash(_("List deleted; its members are still subscribers."), "success")
    return redirect(url_for("audience.index"))


# --- export -----------------------------------------------------------------------------------

@blueprint.route("/export", methods=["POST"])
@requires("subscribers:export")
def export_file():
    """CSV (streamed) or XLSX of a list or a segment with the chosen fields."""
    form = request.form
    list_id = int(form["list"]) if form.get("list", "").isdigit() else None
    segment_id = int(form["segment"]) if form.get("segment", "").isdigit() else None
    status = form.get("status") if form.get("status") in MEMBER_STATUSES else None
    fmt = "xlsx" if form.get("format") == "xlsx" else "csv"
    return download(g.actor, list_id=list_id, segment_id=segment_id,
                    chosen=form_list("fields"), status=status, fmt=fmt)


# --- custom fields ----------------------------------------------------------------------------

@blueprint.route("/fields", methods=["GET", "POST"])
@requires("lists:read")
def fields_page():
    error = None
    if request.method == "POST":
        if not g.actor.can("lists:write"):
            return render_template("web/error.html", status=403,
                                   message=_("Your role may not define fields.")), 403
        form = request.form
        try:
            with db.write(engine()) as conn:
                field_service.create_field(
                    conn, g.actor, form.get("key", "").strip(), form.get("label", ""),
                    form.get("type", "text"),
                    [c for c in form.get("choices", "").replace("\r", "").split("\n") if c.strip()])
            flash(_("Field created."), "success")
            return redirect(url_for("audience.fields_page"))
        except ServiceError as exc:
            error = exc.translated()
    with db.read(engine()) as conn:
        return render_template("audience/fields.html", fields=field_service.list_fields(conn),
                               types=FIELD_TYPES, error=error, form=request.form), 422 if error else 200


@blueprint.route("/fields/<int:field_id>/delete", methods=["POST"])
@requires("lists:write")
def delete_field(field_id: int):
    with db.write(engine()) as conn:
        field_service.delete_field(conn, g.actor, field_id)
    flash(_("Field deleted."), "success")
    return redirect(url_for("audience.fields_page"))

