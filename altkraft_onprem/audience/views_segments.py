"""Audience UI: saved segments and the condition builder (static/audience/segments.js)."""
from __future__ import annotations

import json

from flask import flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.access.policy import keeps_to_lists, requires
from altkraft_onprem.errors import ServiceError

from . import export, lists, segments
from .views import blueprint, engine

EMPTY = {"op": "and", "rules": []}


def _editor(segment: dict | None, conditions: dict, error: str | None = None, status: int = 200):
    with db.read(engine()) as conn:
        catalogue = segments.field_catalogue(conn)
        all_lists = [{"id": lst["id"], "name": lst["name"]}
                     for lst in lists.list_lists(conn, counts=False)]
        available = export.available_fields(conn)
    return render_template("audience/segment.html", segment=segment, error=error,
                           conditions=conditions,
                           catalogue={"fields": catalogue, "lists": all_lists},
                           export_fields=available), status


@blueprint.route("/segments")
@requires("lists:read")
@keeps_to_lists
def segments_page():
    """Counts load afterwards, one request per segment (segments.js), so that many segments
    over a big audience do not hold the page."""
    with db.read(engine()) as conn:
        items = segments.list_segments(conn)
    return render_template("audience/segments.html", segments=items)


@blueprint.route("/segments/<int:segment_id>/count.json")
@requires("lists:read")
@keeps_to_lists
def segment_count(segment_id: int):
    with db.read(engine()) as conn:
        try:
            return jsonify(count=segments.count(conn, segments.get_segment(conn, segment_id)[
                "conditions"], scope.only(g.actor)))
        except ServiceError as exc:          # a field it used was deleted since
            return jsonify(error=exc.translated(), field=exc.field), 422


def _posted_conditions():
    try:
        return json.loads(request.form.get("conditions") or "null") or EMPTY
    except ValueError:
        raise ServiceError("the conditions are not valid JSON", "conditions") from None


@blueprint.route("/segments/new", methods=["GET", "POST"])
@requires("lists:read")
def new_segment():
    if request.method == "GET":
        return _editor(None, EMPTY)
    if not g.actor.can("lists:write"):
        return render_template("web/error.html", status=403,
                               message=_("Your role may not save segments.")), 403
    conditions = EMPTY
    try:
        conditions = _posted_conditions()
        with db.write(engine()) as conn:
            segment_id = segments.create_segment(conn, g.actor, request.form.get("name", ""),
                                                 conditions, request.form.get("description", ""))
    except ServiceError as exc:
        return _editor({"name": request.form.get("name", ""), "description":
                        request.form.get("description", "")}, conditions,
                       exc.shown(), 422)
    flash(_("Segment saved."), "success")
    return redirect(url_for("audience.segment_page", segment_id=segment_id))


@blueprint.route("/segments/<int:segment_id>", methods=["GET", "POST"])
@requires("lists:read")
@keeps_to_lists
def segment_page(segment_id: int):
    with db.read(engine()) as conn:
        segment = segments.get_segment(conn, segment_id)
    if request.method == "GET":
        return _editor(segment, segment["conditions"])
    if not g.actor.can("lists:write"):
        return render_template("web/error.html", status=403,
                               message=_("Your role may not change segments.")), 403
    conditions = segment["conditions"]
    try:
        conditions = _posted_conditions()
        with db.write(engine()) as conn:
            segments.update_segment(conn, g.actor, segment_id, name=request.form.get("name"),
                                    conditions=conditions,
                                    description=request.form.get("description"))
    except ServiceError as exc:
        return _editor(segment, conditions,
                       exc.shown(), 422)
    flash(_("Segment saved."), "success")
    return redirect(url_for("audience.segment_page", segment_id=segment_id))


@blueprint.route("/segments/<int:segment_id>/delete", methods=["POST"])
@requires("lists:write")
def delete_segment(segment_id: int):
    with db.write(engine()) as conn:
        segments.delete_segment(conn, g.actor, segment_id)
    flash(_("Segment deleted."), "success")
    return redirect(url_for("audience.segments_page"))


@blueprint.route("/segments/count", methods=["POST"])
@requires("lists:read")
@keeps_to_lists
def count_conditions():
    """Live count for the condition builder (JSON in, JSON out; CSRF token in X-CSRFToken)."""
    payload = request.get_json(silent=True) or {}
    try:
        with db.read(engine()) as conn:
            found = segments.count(conn, payload.get("conditions"), scope.only(g.actor))
        return jsonify(count=found, label=ngettext("subscriber matches", "subscribers match", found))
    except ServiceError as exc:
        return jsonify(error=exc.translated(), field=exc.field), 422
