"""UI routes: message list, the editor (visual + HTML + text), versions, templates, media,
and the public media URL. The editor's JSON calls come here (session + CSRF header)."""
from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.access.policy import PUBLIC, requires
from altkraft_onprem.config import current_settings as settings
from altkraft_onprem.errors import ServiceError

from . import media as library
from . import preview, service
from .render import TemplateProblem, text_from_html_template

blueprint = Blueprint("messages", __name__)
PAGE = 50
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def _json_error(exc: ServiceError):
    return jsonify(error=exc.translated(), field=exc.field), exc.status


def _problem_json(exc: TemplateProblem):
    return jsonify(error=str(exc), problem=exc.as_dict()), 422


# --- pages -----------------------------------------------------------------------------------

@blueprint.route("/messages")
@requires("messages:read")
def index():
    search = request.args.get("q", "").strip()[:200]
    archived = request.args.get("archived") == "1"
    value = request.args.get("page", "1")
    page = max(1, min(int(value), 100_000)) if value.isdigit() else 1
    with db.read(db.get_engine()) as conn:
        items, total = service.browse_messages(conn, search or None, archived=archived,
                                               limit=PAGE, offset=(page - 1) * PAGE)
        templates = service.list_templates(conn)
    return render_template("messages/index.html", items=items, templates=templates, search=search,
                           archived=archived, total=total, page=page,
                           pages=max(1, -(-total // PAGE)))


@blueprint.route("/messages/<int:message_id>/archive", methods=["POST"])
@requires("messages:write")
def archive(message_id: int):
    try:
        with db.write(db.get_engine()) as conn:
            service.archive_message(conn, g.actor, message_id)
        flash(_("The message was deleted (archived: its versions are kept)."), "success")
    except ServiceError as exc:
        flash(exc.translated(), "error")
    return redirect(url_for("messages.index"))


@blueprint.route("/messages/<int:message_id>/unarchive", methods=["POST"])
@requires("messages:write")
def unarchive(message_id: int):
    try:
        with db.write(db.get_engine()) as conn:
            service.unarchive_message(conn, g.actor, message_id)
        flash(_("The message is back in the list."), "success")
    except ServiceError as exc:
        flash(exc.translated(), "error")
    return redirect(url_for("messages.index", archived=1))


@blueprint.route("/messages/new", methods=["POST"])
@requires("messages:write")
def create():
    name = request.form.get("name", "").strip() or _("Untitled message")
    template_id = request.form.get("template_id", type=int)
    try:
        with db.write(db.get_engine()) as conn:
            if template_id:
                message_id, _version = service.message_from_template(conn, g.actor, template_id, name)
            else:
                message_id, _version = service.create_message(
                    conn, g.actor, name, subject=name, html="<!DOCTYPE html>\n<html><body>\n</body></html>\n",
                    editor="visual")
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(url_for("messages.index"))
    return redirect(url_for("messages.edit", message_id=message_id))


@blueprint.route("/messages/<int:message_id>")
@requires("messages:read")
def edit(message_id: int):
    with db.read(db.get_engine()) as conn:
        message = service.get_message(conn, message_id)
        version = service.get_version(conn, message_id)
        items = library.list_media(conn, settings())
    return render_template("messages/edit.html", message=message, version=version, media=items,
                           problems=service.problems(version),
                           can_write=g.actor.can("messages:write"),
                           can_send=g.actor.can("campaigns:send"))


@blueprint.route("/messages/<int:message_id>/versions")
@requires("messages:read")
def versions(message_id: int):
    with db.read(db.get_engine()) as conn:
        message = service.get_message(conn, message_id)
        rows = service.list_versions(conn, message_id)
    return render_template("messages/versions.html", message=message, versions=rows)


@blueprint.route("/messages/<int:message_id>/versions/<int:version>")
@requires("messages:read")
def version_view(message_id: int, version: int):
    with db.read(db.get_engine()) as conn:
        message = service.get_message(conn, message_id)
        row = service.get_version(conn, message_id, version)
        try:
            rendered = preview.render_preview(conn, settings(), message_id, version)
            error = None
        except (TemplateProblem, ServiceError) as exc:
            rendered, error = None, str(exc)
    return render_template("messages/version.html", message=message, version=row,
                           rendered=rendered, error=error)


@blueprint.route("/messages/<int:message_id>/compare")
@requires("messages:read")
def compare(message_id: int):
    older = request.args.get("from_version", type=int)
    newer = request.args.get("to_version", type=int)
    with db.read(db.get_engine()) as conn:
        message = service.get_message(conn, message_id)
        if not older or not newer:
            newer = message["current_version"]
            older = max(1, newer - 1)
        result = service.compare_versions(conn, message_id, older, newer)
    return render_template("messages/compare.html", message=message, result=result)


@blueprint.route("/messages/<int:message_id>/versions/<int:version>/restore", methods=["POST"])
@requires("messages:write")
def restore(message_id: int, version: int):
    with db.write(db.get_engine()) as conn:
        number = service.restore_version(conn, g.actor, message_id, version)
    flash(_("Version %(old)s restored as version %(new)s.", old=version, new=number), "success")
    return redirect(url_for("messages.edit", message_id=message_id))


@blueprint.route("/messages/<int:message_id>/save-as-template", methods=["POST"])
@requires("messages:write")
def save_as_template(message_id: int):
    name = request.form.get("name", "").strip()
    try:
        with db.write(db.get_engine()) as conn:
            version = service.get_version(conn, message_id)
            service.create_template(conn, g.actor, name, version["html"], subject=version["subject"],
                                    preheader=version["preheader"], editor_state=version["editor_state"])
    except ServiceError as exc:
        flash(exc.translated(), "error")
    else:
        flash(_("Saved as template “%(name)s”.", name=name), "success")
    return redirect(url_for("messages.edit", message_id=message_id))


@blueprint.route("/messages/templates/<int:template_id>/delete", methods=["POST"])
@requires("messages:write")
def delete_template(template_id: int):
    try:
        with db.write(db.get_engine()) as conn:
            service.delete_template(conn, g.actor, template_id)
    except ServiceError as exc:
        flash(exc.translated(), "error")
    return redirect(url_for("messages.index"))


@blueprint.route("/messages/media")
@requires("messages:read")
def media_page():
    with db.read(db.get_engine()) as conn:
        items = library.list_media(conn, settings())
    return render_template("messages/media.html", items=items)


@blueprint.route("/messages/media/upload", methods=["POST"])
@requires("messages:write")
def media_upload():
    """Form upload (library page) and the visual editor's asset manager (JSON answer)."""
    files = request.files.getlist("file") or request.files.getlist("files[]")
    wants_json = request.accept_mimetypes.best == "application/json" or not request.form.get("csrf_token")
    added, errors = [], []
    for upload in files:
        data = upload.read(settings()["messages.upload_max_mb"] * 1024 * 1024 + 1)
        try:
            with db.write(db.get_engine()) as conn:
                added.append(library.add_media(conn, settings(), g.actor, upload.filename or "image", data))
        except ServiceError as exc:
            errors.append(f"{upload.filename}: {exc.translated()}")
    if not files:
        errors.append(_("Choose a file to upload."))
    if wants_json:
        body: dict[str, Any] = {"data": [{"src": m["url"], "type": "image", "name": m["name"],
                                          "width": m["width"], "height": m["height"],
                                          "note": m.get("note")} for m in added]}
        if errors:
            body["error"] = "; ".join(errors)
        return jsonify(body), (201 if added else 422)
    for error in errors:
        flash(error, "error")
    for item in added:
        if item.get("note"):
            flash(f"{item['name']}: {item['note']}", "warning")
    if added:
        flash(ngettext("%(num)s image added.", "%(num)s images added.", len(added)), "success")
    return redirect(url_for("messages.media_page"))


@blueprint.route("/messages/media/<int:media_id>/delete", methods=["POST"])
@requires("messages:write")
def media_delete(media_id: int):
    with db.write(db.get_engine()) as conn:
        library.delete_media(conn, settings(), g.actor, media_id)
    return redirect(url_for("messages.media_page"))


# --- the editor's JSON calls -----------------------------------------------------------------

def _draft() -> dict[str, Any]:
    body = request.get_json(silent=True) or {}
    fields = ("subject", "preheader", "html", "text", "text_follows_html", "editor",
              "editor_state", "data_source")
    return {k: body.get(k) for k in fields if k in body}


@blueprint.route("/messages/<int:message_id>/save", methods=["POST"])
@requires("messages:write")
def save(message_id: int):
    body = request.get_json(silent=True) or {}
    try:
        with db.write(db.get_engine()) as conn:
            number = service.save_version(conn, g.actor, message_id, name=body.get("name"), **_draft())
            version = service.get_version(conn, message_id, number)
    except ServiceError as exc:
        return _json_error(exc)
    return jsonify(version=number, text=version["text"], summary=version["summary"],
                   problems=service.problems(version))


@blueprint.route("/messages/<int:message_id>/preview", methods=["POST"])
@requires("messages:read")
def preview_json(message_id: int):
    body = request.get_json(silent=True) or {}
    try:
        with db.read(db.get_engine()) as conn:
            rendered = preview.render_preview(
                conn, settings(), message_id, None, body.get("subscriber_id") or None,
                (body.get("email") or "").strip() or None, _draft())
    except TemplateProblem as exc:
        return _problem_json(exc)
    except ServiceError as exc:
        return _json_error(exc)
    return jsonify(subject=rendered.subject, html=rendered.html, text=rendered.text)


@blueprint.route("/messages/<int:message_id>/send-test", methods=["POST"])
@requires("campaigns:send")
def send_test(message_id: int):
    body = request.get_json(silent=True) or {}
    recipients = [a for a in str(body.get("recipients", "")).replace(";", ",").split(",") if a.strip()]
    try:
        with db.write(db.get_engine()) as conn:
            results = preview.send_test(conn, settings(), g.actor, message_id, recipients,
                                        from_email=str(body.get("from_email", "")),
                                        from_name=str(body.get("from_name", "")),
                                        subscriber_id=body.get("subscriber_id") or None)
    except ServiceError as exc:
        return _json_error(exc)
    return jsonify(results=results)


@blueprint.route("/messages/text-version", methods=["POST"])
@requires("messages:write")
def text_version():
    body = request.get_json(silent=True) or {}
    return jsonify(text=text_from_html_template(str(body.get("html", ""))))


@blueprint.route("/messages/check", methods=["POST"])
@requires("messages:read")
def check():
    return jsonify(problems=service.problems(_draft()))


# --- public media ----------------------------------------------------------------------------

@blueprint.route("/p/media/<name>")
@requires(PUBLIC)
def public_media(name: str):
    found = library.stored_file(settings(), name)
    if found is None:
        abort(404)
    path, content_type = found
    response = send_file(path, mimetype=content_type, max_age=31536000, conditional=True)
    # Nothing served from here may run: an SVG opened directly is a document otherwise.
    response.headers["Content-Security-Policy"] = SVG_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
