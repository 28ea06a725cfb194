"""Audience UI: subscribers (browse, add, profile page, edit, memberships, delete, GDPR),
the suppression list and the trash."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from flask import Response, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.access.policy import keeps_to_lists, requires
from altkraft_onprem.access.service import record
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError

from . import activity, gdpr, lists, optin, segments, subscribers, suppression, trash
from . import fields as field_service
from .jobs import send_confirmation
from .models import MEMBER_STATUSES, STANDARD_FIELDS, SUBSCRIBER_STATES
from .views import blueprint, engine, form_list

PAGE = 50


def _page() -> int:
    value = request.args.get("page", "1")
    return max(1, min(int(value), 100_000)) if value.isdigit() else 1


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else None


@blueprint.route("/subscribers")
@requires("lists:read")
@keeps_to_lists
def subscribers_page():
    page = _page()
    list_id, segment_id = _int_arg("list"), _int_arg("segment")
    status = request.args.get("status") if request.args.get("status") in MEMBER_STATUSES else None
    search = request.args.get("q", "")[:200]
    with db.read(engine()) as conn:
        where = segments.segment_expr(conn, segment_id) if segment_id else None
        rows, total = subscribers.browse(conn, limit=PAGE, offset=(page - 1) * PAGE, search=search,
                                         list_id=list_id, status=status, segment=where,
                                         only=scope.only(g.actor))
        all_lists = lists.list_lists(conn, counts=False, only=scope.only(g.actor))
        all_segments = segments.list_segments(conn)
    return render_template("audience/subscribers.html", rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PAGE)), lists=all_lists,
                           segments=all_segments, statuses=MEMBER_STATUSES,
                           filters={"q": search, "list": list_id, "segment": segment_id,
                                    "status": status})


def _form_values(custom_defs: dict) -> dict:
    data = {name: request.form.get(name, "") for name in STANDARD_FIELDS if name in request.form}
    custom = {}
    for key, definition in custom_defs.items():
        name = f"custom.{key}"
        if definition["type"] == "boolean":
            if f"{name}.present" in request.form:
                custom[key] = name in request.form
        elif name in request.form:
            custom[key] = request.form.get(name) or None
    if custom:
        data["custom"] = custom
    return data


@blueprint.route("/subscribers/new", methods=["GET", "POST"])
@requires("lists:write")
@keeps_to_lists
def new_subscriber():
    error, values = None, {}
    with db.read(engine()) as conn:
        defs = field_service.definitions(conn)
        all_lists = lists.list_lists(conn, counts=False, only=scope.only(g.actor))
    if request.method == "POST":
        values = _form_values(defs)
        try:
            with db.write(engine()) as conn:
                subscriber_id = subscribers.create_subscriber(
                    conn, g.actor, values, list_ids=[int(i) for i in form_list("lists") if i.isdigit()],
                    status=request.form.get("status", "confirmed"), source="manual")
            flash(_("Subscriber added."), "success")
            return redirect(url_for("audience.subscriber_page", subscriber_id=subscriber_id))
        except ServiceError as exc:
            error = exc.shown()
    return render_template("audience/subscriber_form.html", person=None, values=values,
                           defs=defs, lists=all_lists, statuses=MEMBER_STATUSES,
                           fields=STANDARD_FIELDS, error=error), 422 if error else 200


@blueprint.route("/subscribers/<int:subscriber_id>")
@requires("lists:read")
@keeps_to_lists
def subscriber_page(subscriber_id: int):
    with db.read(engine()) as conn:
        person = subscribers.get_subscriber(conn, subscriber_id)
        defs = field_service.definitions(conn)
        page = max(1, min(request.args.get("page", 1, type=int) or 1, 10_000))
        history = activity.timeline(conn, subscriber_id, limit=activity.PAGE_SIZE + 1,
                                    offset=(page - 1) * activity.PAGE_SIZE)
        consents = activity.consent_record(conn, subscriber_id)
        names = {lst["id"]: lst["name"]
                 for lst in lists.list_lists(conn, counts=False, only=scope.only(g.actor))}
        suppressed = suppression.is_suppressed(conn, person["email"])
    return render_template("audience/subscriber.html", person=person, defs=defs,
                           history=history[:activity.PAGE_SIZE], history_page=page,
                           history_more=len(history) > activity.PAGE_SIZE,
                           consents=consents, list_names=names, statuses=MEMBER_STATUSES,
                           states=SUBSCRIBER_STATES, fields=STANDARD_FIELDS, suppressed=suppressed)


@blueprint.route("/subscribers/<int:subscriber_id>/edit", methods=["GET", "POST"])
@requires("lists:write")
@keeps_to_lists
def edit_subscriber(subscriber_id: int):
    error = None
    with db.read(engine()) as conn:
        person = subscribers.get_subscriber(conn, subscriber_id)
        defs = field_service.definitions(conn)
    values = {**{k: person[k] for k in STANDARD_FIELDS}, "custom": person["custom"]}
    if request.method == "POST":
        values = _form_values(defs)
        try:
            with db.write(engine()) as conn:
                subscribers.update_subscriber(conn, g.actor, subscriber_id, values)
                state = request.form.get("state")
                if state and state != person["state"]:
                    subscribers.set_state(conn, g.actor, subscriber_id, state)
            flash(_("Saved."), "success")
            return redirect(url_for("audience.subscriber_page", subscriber_id=subscriber_id))
        except ServiceError as exc:
            error = exc.shown()
    return render_template("audience/subscriber_form.html", person=person, values=values,
                           defs=defs, lists=[], statuses=MEMBER_STATUSES, states=SUBSCRIBER_STATES,
                           fields=STANDARD_FIELDS, error=error), 422 if error else 200


@blueprint.route("/subscribers/<int:subscriber_id>/lists", methods=["POST"])
@requires("lists:write")
@keeps_to_lists
def subscriber_lists(subscriber_id: int):
    form = request.form
    list_id = int(form["list"]) if form.get("list", "").isdigit() else None
    try:
        with db.write(engine()) as conn:
            if list_id is None:
                raise ServiceError("choose a list", "list")
            if form.get("action") == "remove":
                subscribers.change_memberships(conn, g.actor, subscriber_id, remove=[list_id])
            elif form.get("action") == "resend":
                optin.resend(conn, g.actor, subscriber_id, list_id)
            else:
                subscribers.change_memberships(conn, g.actor, subscriber_id, add=[list_id],
                                               status=form.get("status", "confirmed"))
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(url_for("audience.subscriber_page", subscriber_id=subscriber_id))
    if form.get("action") == "resend":
        send_confirmation(subscriber_id, list_id)
        flash(_("The confirmation email is on its way."), "success")
    return redirect(url_for("audience.subscriber_page", subscriber_id=subscriber_id))


@blueprint.route("/subscribers/delete", methods=["POST"])
@requires("subscribers:delete")
def delete_subscribers():
    """One, a selection, a list's members or a segment's matches -> one deletion batch."""
    form = request.form
    try:
        with db.write(engine()) as conn:
            if form.get("segment", "").isdigit():
                found = segments.get_segment(conn, int(form["segment"]))
                result = trash.delete_to_trash(conn, g.actor, where=segments.matching(
                    conn, found["conditions"]), description=_("matches of %(name)s", name=found["name"]))
            elif form.get("list", "").isdigit():
                found = lists.get_list(conn, int(form["list"]), counts=False)
                result = trash.delete_to_trash(conn, g.actor, list_id=found["id"],
                                               description=_("members of %(name)s", name=found["name"]))
            else:
                ids = [int(i) for i in form_list("ids") if i.isdigit()]
                result = trash.delete_to_trash(conn, g.actor, ids=ids,
                                               description=_("%(n)d selected", n=len(ids)))
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(request.referrer or url_for("audience.subscribers_page"))
    flash(_("%(n)d moved to the trash.", n=result["count"]), "success")
    return redirect(url_for("audience.trash_page"))


@blueprint.route("/subscribers/<int:subscriber_id>/gdpr.json")
@requires("subscribers:export")
@keeps_to_lists
def gdpr_export(subscriber_id: int):
    with db.read(engine()) as conn:
        data = gdpr.export_person(conn, subscriber_id)
    with db.write(engine()) as conn:
        record(conn, g.actor, "subscriber.gdpr_export", "subscriber", subscriber_id)
    return Response(json.dumps(data, ensure_ascii=False, indent=2), mimetype="application/json",
                    headers={"Content-Disposition":
                             f'attachment; filename="subscriber-{subscriber_id}.json"'})


@blueprint.route("/subscribers/<int:subscriber_id>/erase", methods=["POST"])
@requires("subscribers:delete")
@keeps_to_lists
def gdpr_erase(subscriber_id: int):
    if request.form.get("confirm") != "erase":
        flash(_("Type erase to confirm."), "error")
        return redirect(url_for("audience.subscriber_page", subscriber_id=subscriber_id))
    with db.write(engine()) as conn:
        gdpr.erase_person(conn, g.actor, subscriber_id)
    flash(_("The subscriber and their history were erased."), "success")
    return redirect(url_for("audience.subscribers_page"))


# --- suppression ------------------------------------------------------------------------------

@blueprint.route("/suppression", methods=["GET", "POST"])
@requires("lists:read")
def suppression_page():
    result = None
    if request.method == "POST":
        if not g.actor.can("subscribers:delete"):
            return render_template("web/error.html", status=403,
                                   message=_("Your role may not change the suppression list.")), 403
        upload = request.files.get("file")
        values, problems = [], []
        if upload and upload.filename:
            with tempfile.NamedTemporaryFile(prefix="ak-suppress-") as tmp:   # no user text in paths
                upload.save(tmp.name)
                try:
                    values = suppression.file_values(Path(tmp.name), upload.filename,
                                                     current_settings())
                except ServiceError as exc:
                    problems.append((upload.filename, exc.translated()))
        reason = request.form.get("reason", "")
        with db.write(engine()) as conn:
            result = suppression.suppress_many(conn, g.actor, request.form.get("entries", ""),
                                               reason, source="paste")
            more = suppression.suppress_many(conn, g.actor, values, reason, source="file")
        result = {"added": result["added"] + more["added"],
                  "invalid": problems + result["invalid"] + more["invalid"]}
        flash(_("%(n)d added.", n=result["added"]), "success" if not result["invalid"] else "error")
    page = _page()
    search = request.args.get("q", "")[:200]
    with db.read(engine()) as conn:
        rows, total = suppression.list_entries(conn, search=search, limit=PAGE,
                                               offset=(page - 1) * PAGE)
    return render_template("audience/suppression.html", rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PAGE)), q=search, result=result)


@blueprint.route("/suppression/<int:entry_id>/delete", methods=["POST"])
@requires("subscribers:delete")
def delete_suppression(entry_id: int):
    with db.write(engine()) as conn:
        suppression.remove(conn, g.actor, entry_id)
    flash(_("Removed from the suppression list."), "success")
    return redirect(url_for("audience.suppression_page"))


# --- trash ------------------------------------------------------------------------------------

@blueprint.route("/trash")
@requires("subscribers:delete")
def trash_page():
    page = _page()
    batch = _int_arg("batch")
    with db.read(engine()) as conn:
        rows, total = trash.trash_items(conn, batch=batch, limit=PAGE, offset=(page - 1) * PAGE)
        batches = trash.batches(conn)
    return render_template("audience/trash.html", rows=rows, total=total, page=page,
                           pages=max(1, -(-total // PAGE)), batches=batches, batch=batch)


@blueprint.route("/trash/restore", methods=["POST"])
@requires("subscribers:delete")
def restore_trash():
    form = request.form
    try:
        with db.write(engine()) as conn:
            count = trash.restore(conn, g.actor,
                                  ids=[int(i) for i in form_list("ids") if i.isdigit()] or None,
                                  batch=int(form["batch"]) if form.get("batch", "").isdigit() else None)
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(url_for("audience.trash_page"))
    flash(_("%(n)d restored.", n=count), "success")
    return redirect(url_for("audience.trash_page"))
