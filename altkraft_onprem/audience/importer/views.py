"""The Import page (/audience/import): paste or upload, preview with column mapping, then a
progress page that polls a JSON endpoint and shows the report."""
from __future__ import annotations

import io
import re
import shutil

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.audience import lists as list_service
from altkraft_onprem.audience.models import STANDARD_FIELDS
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import Conflict, ServiceError

from . import jobs, mapping, service, undo
from .archives import Limits
from .text import ENCODING_CHOICES

blueprint = Blueprint("importer", __name__, url_prefix="/audience/import")
PERMISSION = "subscribers:import"
TOKEN = re.compile(r"^[0-9a-f]{24}$")
MAX_PASTE = 20 * 1024 * 1024


def progress_phrases(job: dict) -> dict[str, str]:
    """The progress line's parts, translated with their plural forms: the page shows them
    and its script replaces them from the progress JSON."""
    done, errors = job["progress"]["rows_done"], job["progress"]["errors"]
    rate = int(job["progress"]["rows_per_s"] or 0)
    states = {"queued": _("Queued"), "running": _("Running"), "finished": _("Finished"),
              "failed": _("Failed")}
    return {"state": states.get(job["state"], job["state"]),
            "rows": ngettext("%(num)s row", "%(num)s rows", done),
            "rate": ngettext("%(num)s row/s", "%(num)s rows/s", rate),
            "errors": ngettext("%(num)s error so far", "%(num)s errors so far", errors)}


def _upload_dir():
    return current_settings().data_dir / service.UPLOADS


def _lists():
    with db.read(db.get_engine()) as conn:
        return list_service.list_lists(conn, counts=False)


def _form_state(form) -> dict:
    header = form.get("has_header", "auto")
    encoding = form.get("encoding", "")
    return {"list_ids": [int(x) for x in form.getlist("lists") if x.isdigit()],
            "mode": form.get("mode", "upsert"), "status": form.get("status", "confirmed"),
            "has_header": header if header in ("auto", "yes", "no") else "auto",
            "encoding": encoding if encoding in ENCODING_CHOICES else ""}


def _options(state: dict) -> dict:
    options: dict = {} if state["has_header"] == "auto" else {"has_header": state["has_header"] == "yes"}
    if state["encoding"]:
        options["encoding"] = state["encoding"]
    return options


def _encoding_labels() -> list[tuple[str, str]]:
    labels = {"utf-8": "UTF-8", "cp1251": _("Windows-1251 (Cyrillic)"),
              "koi8_r": _("KOI8-R (Cyrillic)"), "cp866": _("DOS 866 (Cyrillic)"),
              "utf-16": _("UTF-16 (Excel's Unicode text)"),
              "cp1252": _("Windows-1252 (Western European)"), "latin_1": "ISO-8859-1"}
    return [(name, labels[name]) for name in ENCODING_CHOICES]


def _uploaded(token: str) -> list:
    """The file of an upload still waiting for its import (empty when it is gone)."""
    if not TOKEN.match(token):
        abort(400)
    folder = _upload_dir() / token
    return sorted(folder.glob("upload*")) if folder.is_dir() else []


@blueprint.route("/")
@requires(PERMISSION)
def index():
    with db.read(db.get_engine()) as conn:
        recent = service.recent_imports(conn, 20)
    return render_template("importer/index.html", lists=_lists(), recent=recent, error=None,
                           state={"list_ids": [], "mode": "upsert", "status": "confirmed",
                                  "has_header": "auto"})


@blueprint.route("/preview", methods=["POST"])
@requires(PERMISSION)
def preview():
    state = _form_state(request.form)
    pasted = request.form.get("paste", "")
    upload = request.files.get("file")
    reread = _uploaded(request.form["token"]) if request.form.get("token") else None
    error = None
    if reread:          # the same upload again, in the encoding chosen on the preview
        path, filename = reread[0], request.form.get("filename", reread[0].name)[:300]
    elif reread is not None:
        return render_template("web/error.html", status=410,
                               message=_("The uploaded data is gone; start again.")), 410
    elif upload is not None and upload.filename:
        filename = upload.filename
        path = service.save_upload(current_settings().data_dir, filename, upload.stream)
    elif pasted.strip():
        if len(pasted) > MAX_PASTE:
            error = _("The pasted text is too long; upload it as a file instead.")
        filename = "clipboard.txt"
        path = service.save_upload(current_settings().data_dir, filename,
                                   io.BytesIO(pasted.encode("utf-8")))
    else:
        error = _("Paste rows from a spreadsheet or choose a file.")
    if error is None:
        try:
            with db.read(db.get_engine()) as conn:
                custom = service.custom_definitions(conn)
            tables = service.preview(path, filename, Limits.from_settings(current_settings()),
                                     custom_keys=list(custom), **_options(state))
            if not any(t["rows"] or t["header"] for t in tables):
                error = _("No rows found in what was given.")
        except ServiceError as exc:
            error = exc.translated()
        if error is not None:
            service.discard_upload(path)
    if error is not None:
        with db.read(db.get_engine()) as conn:
            recent = service.recent_imports(conn, 20)
        return render_template("importer/index.html", lists=_lists(), recent=recent, error=error,
                               state=state, paste=pasted), 422
    table = next(t for t in tables if t["rows"] or t["header"])
    targets = [("", _("— skip —"))] + [(name, field_label(name)) for name in STANDARD_FIELDS] + \
        [(mapping.CUSTOM_PREFIX + key, f"{key} ({field.type})") for key, field in custom.items()]
    proposals = {}
    for column in table["columns"]:
        if table["mapping"].get(column):
            continue
        key = f"column_{column}" if column.isdigit() else suggest_key(column)
        if key and key not in custom and key not in STANDARD_FIELDS:
            proposals[column] = mapping.CUSTOM_PREFIX + key
    return render_template("importer/preview.html", table=table, tables=tables, targets=targets,
                           proposals=proposals, token=path.parent.name, filename=filename,
                           state=state, lists=_lists(), encodings=_encoding_labels())


@blueprint.route("/start", methods=["POST"])
@requires(PERMISSION)
def start():
    state = _form_state(request.form)
    token = request.form.get("token", "")
    files = _uploaded(token)
    folder = _upload_dir() / token
    if not files:
        return render_template("web/error.html", status=410,
                               message=_("The uploaded data is gone; start again.")), 410
    columns = request.form.getlist("column")
    chosen = request.form.getlist("target")
    column_map = {c: t for c, t in zip(columns, chosen, strict=False)}
    try:
        with db.write(db.get_engine()) as conn:
            import_id = service.create_import(
                conn, g.actor, filename=request.form.get("filename", files[0].name)[:300], path=files[0],
                list_ids=state["list_ids"], mode=state["mode"], status=state["status"],
                mapping=column_map, options=_options(state))
    except ServiceError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return render_template("web/error.html", status=422, message=exc.translated()), 422
    jobs.run_import(import_id)
    return redirect(url_for("importer.show", import_id=import_id))


@blueprint.route("/<int:import_id>")
@requires(PERMISSION)
def show(import_id: int):
    with db.read(db.get_engine()) as conn:
        job = service.get_import(conn, import_id)
        names = {item["id"]: item["name"] for item in list_service.list_lists(conn, counts=False)}
        kept = undo.people(conn, job["undo_result"]["kept_ids"]) if job["undo_result"] else []
    return render_template("importer/show.html", job=job, phrases=progress_phrases(job),
                           list_names=[names.get(i, f"#{i}") for i in job["list_ids"]],
                           kept=kept)


@blueprint.route("/<int:import_id>/undo")
@requires(PERMISSION)
def undo_check(import_id: int):
    """What an undo would do (a dry run), and the form that confirms it."""
    with db.read(db.get_engine()) as conn:
        job = service.get_import(conn, import_id)
        try:
            counts = undo.undo_import(conn, g.actor, import_id, dry_run=True,
                                      trash_days=current_settings()["audience.trash_days"])
        except Conflict as exc:
            return render_template("web/error.html", status=409, message=exc.translated()), 409
    return render_template("importer/undo.html", job=job, counts=counts)


@blueprint.route("/<int:import_id>/undo", methods=["POST"])
@requires(PERMISSION)
def undo_confirmed(import_id: int):
    try:
        with db.write(db.get_engine()) as conn:
            undo.undo_import(conn, g.actor, import_id,
                             trash_days=current_settings()["audience.trash_days"])
    except Conflict as exc:
        return render_template("web/error.html", status=409, message=exc.translated()), 409
    return redirect(url_for("importer.show", import_id=import_id) + "#import-undone")


@blueprint.route("/<int:import_id>/progress.json")
@requires(PERMISSION)
def progress(import_id: int):
    with db.read(db.get_engine()) as conn:
        job = service.get_import(conn, import_id)
    return jsonify({"id": job["id"], "state": job["state"], "counts": job["counts"],
                    "progress": job["progress"], "error": job["error"],
                    "phrases": progress_phrases(job)})


@blueprint.route("/<int:import_id>/rejected.csv")
@requires(PERMISSION)
def rejected(import_id: int):
    return rejected_response(import_id)


def rejected_response(import_id: int) -> Response:
    """The rejected rows as a streamed CSV download (UI and API)."""
    with db.read(db.get_engine()) as conn:
        service.get_import(conn, import_id)          # 404 before the stream starts

    def chunks():
        with db.read(db.get_engine()) as conn:
            yield "\ufeff"                          # Excel reads UTF-8 CSV right with a BOM
            yield from service.rejected_csv(conn, import_id)
    return Response(stream_with_context(chunks()), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="import-{import_id}-rejected.csv"'})


def field_label(name: str) -> str:
    return {"email": _("Email"), "first_name": _("First name"), "last_name": _("Last name"),
            "phone": _("Phone"), "gender": _("Gender"), "birth_date": _("Birth date"),
            "company": _("Company"), "city": _("City"), "region": _("Region"),
            "country": _("Country"), "language": _("Language"), "timezone": _("Time zone")}[name]


_TRANSLIT = dict(zip("абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
                     ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o",
                      "p", "r", "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e",
                      "yu", "ya"], strict=True))


def suggest_key(header: str) -> str:
    """A custom field key for an unknown column: "Любимый цвет" -> "lyubimyy_tsvet"."""
    text = "".join(_TRANSLIT.get(ch, ch) for ch in header.strip().lower())
    key = re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:60]
    if not key:
        return ""
    return key if key[0].isalpha() else f"f_{key}"
