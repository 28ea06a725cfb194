"""Settings area (settings:manage, every change audited): the default sender, double opt-in,
SMTP relays and their limits, and which settings only the config file may set. Sending domains
are in views_domains.py, on this blueprint."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.config import current_settings
from altkraft_onprem.config.declared import DOMAIN_LIMIT_FIELDS, SMTP_RELAY_FIELDS
from altkraft_onprem.errors import ServiceError

from . import domains, settings_store
from .models import ALGORITHM_LABELS, KEY_STATE_LABELS

blueprint = Blueprint("settings", __name__)
RELAY_FIELDS = [f.key for f in SMTP_RELAY_FIELDS]
LIMIT_FIELDS = [f.key for f in DOMAIN_LIMIT_FIELDS]
BLANK_ROWS = 1          # empty rows under a table to add one more


def base_settings():
    from flask import current_app

    return current_app.config["ALTKRAFT_SETTINGS"]


def _fields(settings, stored: dict, provenance: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for key, (group, label, kind) in settings_store.EDITABLE.items():
        value = settings[key]
        if kind == "lines":
            value = "\n".join(value)
        groups.setdefault(group, []).append({
            "key": key, "label": _(label), "kind": kind, "value": value,
            "here": key in stored, "at": provenance.get(key, {}).get("at"),
            "by": provenance.get(key, {}).get("by", ""),
            "file_value": base_settings()[key]})
    return groups


def _file_only() -> list[dict]:
    base = base_settings()
    return [{"key": key, "what": _(what), "value": str(base[key]) if show else None,
             "set": bool(base[key])} for key, what, show in settings_store.FILE_ONLY]


def render_index(error: str | None = None, status: int = 200, form_group: str = ""):
    settings = current_settings()
    with db.read(db.get_engine()) as conn:
        stored = settings_store.stored(conn)
        provenance = settings_store.provenance(conn)
        listed = domains.list_domains(conn, settings)
    groups = _fields(settings, stored, provenance)
    page = render_template(
        "settings/index.html", domains=listed, groups=groups,
        group_labels={k: _(v) for k, v in settings_store.GROUP_LABELS.items()},
        relays=settings["smtp.relays"], limits=settings["delivery.domain_limits"],
        relay_fields=RELAY_FIELDS, blank_rows=BLANK_ROWS, file_only=_file_only(),
        password_files=sorted({r["password_file"] for r in base_settings()["smtp.relays"]
                               if r["password_file"]}),
        config_source=base_settings().source, error=error, form_group=form_group,
        state_labels={k: _(v) for k, v in KEY_STATE_LABELS.items()},
        algorithm_labels=ALGORITHM_LABELS, relays_here="smtp.relays" in stored,
        limits_here="delivery.domain_limits" in stored)
    return page, status


@blueprint.route("/settings")
@requires("settings:manage")
def index():
    return render_index()


def _raw(key: str, kind: str, text: str):
    if kind == "lines":
        return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    return text.strip()


@blueprint.route("/settings/values", methods=["POST"])
@requires("settings:manage")
def save_values():
    group = request.form.get("group", "")
    raw = {key: _raw(key, kind, request.form.get(key, ""))
           for key, (in_group, _label, kind) in settings_store.EDITABLE.items()
           if in_group == group and kind != "tables" and key in request.form}
    try:
        with db.write(db.get_engine()) as conn:
            changed = settings_store.set_values(conn, g.actor, base_settings(), raw)
    except ServiceError as exc:
        return render_index(exc.translated(), 422, group)
    flash(_("Saved.") if changed else _("Nothing changed."), "success")
    return redirect(url_for("settings.index") + f"#group-{group}")


def _rows(prefix: str, names: list[str]) -> list[dict]:
    """Rows of a table form (prefix-INDEX-FIELD), without blank and removed ones."""
    indexes = sorted({int(k.split("-")[1]) for k in request.form
                      if k.startswith(prefix + "-") and k.split("-")[1].isdigit()})
    rows = []
    for index in indexes[:100]:
        row = {name: request.form.get(f"{prefix}-{index}-{name}", "").strip() for name in names}
        if request.form.get(f"{prefix}-{index}-remove") or not row[names[0]]:
            continue
        rows.append(row)
    return rows


def _relay(row: dict) -> dict:
    relay = {k: v for k, v in row.items() if v != ""}
    relay["verify_tls"] = bool(row.get("verify_tls"))
    return relay


@blueprint.route("/settings/relays", methods=["POST"])
@requires("settings:manage")
def save_relays():
    relays = [_relay(r) for r in _rows("relay", RELAY_FIELDS)]
    limits = _rows("limit", LIMIT_FIELDS)
    try:
        with db.write(db.get_engine()) as conn:
            changed = settings_store.set_values(conn, g.actor, base_settings(),
                                                {"smtp.relays": relays,
                                                 "delivery.domain_limits": limits})
    except ServiceError as exc:
        return render_index(exc.translated(), 422, "relays")
    flash(_("Saved.") if changed else _("Nothing changed."), "success")
    return redirect(url_for("settings.index") + "#group-relays")


@blueprint.route("/settings/reset", methods=["POST"])
@requires("settings:manage")
def reset():
    key = request.form.get("key", "")
    if key not in settings_store.EDITABLE:
        return render_index(_("This setting can only be changed in the config file."), 422)
    with db.write(db.get_engine()) as conn:
        settings_store.reset_value(conn, g.actor, key)
    flash(_("%(key)s is the config file's value again.", key=key), "success")
    return redirect(url_for("settings.index") + f"#group-{settings_store.EDITABLE[key][0]}")
