"""UI routes: campaign list, the new-campaign form, the campaign page with live progress."""
from __future__ import annotations

import re
import zoneinfo

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.access.policy import keeps_to_lists, requires
from altkraft_onprem.audience import lists, segments
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery.providers import PROVIDER_LABELS
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages import service as messages

from . import actions, breakers, service, splittest
from .models import (
    MAX_UTM_LENGTH,
    MAX_VARIANTS,
    MAX_WAIT_HOURS,
    SPLIT_METRIC_LABELS,
    SPLIT_METRICS,
    UTM_KEYS,
    variant_letter,
)

blueprint = Blueprint("campaigns", __name__)


def _choices(conn) -> dict:
    return {"messages": messages.list_messages(conn),
            "lists": lists.list_lists(conn, counts=False, only=scope.only(g.actor)),
            "segments": segments.list_segments(conn)}


def _ints(name: str) -> list[int]:
    return [int(v) for v in request.form.getlist(name) if v.isdigit()]


def _form_values() -> dict:
    form = request.form
    return {
        "name": form.get("name", "").strip(),
        "message_id": form.get("message_id", type=int),
        "list_ids": _ints("lists"), "segment_ids": _ints("segments"),
        "exclude_list_ids": _ints("exclude_lists"),
        "from_email": form.get("from_email", "").strip(),
        "from_name": form.get("from_name", "").strip(),
        "reply_to": form.get("reply_to", "").strip() or None,
        "schedule_at": form.get("schedule_at", "").strip() or None,
        "timezone": form.get("timezone", "").strip() or "UTC",
        "utm": {k: form.get(k, "").strip() for k in UTM_KEYS if form.get(k, "").strip()},
        "link_utm": _link_utm_values(),
        "track_opens": form.get("track_opens") == "on",
        "track_clicks": form.get("track_clicks") == "on",
        "archive": form.get("archive") == "on",
        "split_test": _split_values(),
        "send_at_local": _local_values(),
    }


_LINK_UTM_INPUT = re.compile(r"^link_utm-(\d{1,6})-(\w+)$")


def _link_utm_values() -> dict:
    """The "Per-link UTM marks" inputs (link_utm-<number>-<key>): {number: {key: value}};
    an empty input inherits the campaign-wide mark (the service checks numbers and values)."""
    marks: dict[str, dict[str, str]] = {}
    for name, value in request.form.items():
        match = _LINK_UTM_INPUT.match(name)
        if match and value.strip():
            marks.setdefault(match.group(1), {})[match.group(2)] = value.strip()
    return marks


def _message_links(message_id: int | None) -> list[dict]:
    """The chosen message's links, numbered as link_utm and the click tracker number them."""
    if not message_id:
        return []
    try:
        with db.read(db.get_engine()) as conn:
            links = service.message_links(conn, message_id)
    except ServiceError:
        return []
    return [{"number": n, "url": url} for n, url in links]


def _render_form(values: dict, choices: dict, error: ServiceError | None = None, **extra):
    """The new/edit form; `error` (the service's refusal) marks its field when it is a
    per-link mark."""
    return render_template("campaigns/new.html", values=values, utm_keys=UTM_KEYS,
                           max_utm_length=MAX_UTM_LENGTH, links=_message_links(values.get("message_id")),
                           error_field=error.field if error else None,
                           error_text=error.translated() if error else "", max_variants=MAX_VARIANTS,
                           max_wait_hours=MAX_WAIT_HOURS, metrics=SPLIT_METRICS,
                           metric_labels=SPLIT_METRIC_LABELS, letter=variant_letter, **extra,
                           **choices)


def _local_values() -> dict | None:
    """The "Local time" part of the form (the service checks the values)."""
    form = request.form
    if form.get("send_at_local") != "on":
        return None
    quiet = None
    if form.get("quiet_hours") == "on":
        quiet = {"start": form.get("quiet_start", "").strip(), "end": form.get("quiet_end", "").strip()}
    return {"time": form.get("local_time", "").strip(),
            "fallback_timezone": form.get("fallback_timezone", "").strip() or None,
            "quiet_hours": quiet}


def _number(raw: str):
    """A form number as int/float when it is one; else the text, which the service refuses
    with the field's name."""
    raw = (raw or "").strip().replace(",", ".")
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _split_values() -> dict | None:
    """The "Split test" part of the form: rows A and B always count, C–E when filled in."""
    form = request.form
    if form.get("split_test") != "on":
        return None
    rows = zip(form.getlist("variant_subject"), form.getlist("variant_from_name"),
               form.getlist("variant_message_id"), strict=False)
    variants = []
    for number, (subject, from_name, message_id) in enumerate(rows, start=1):
        if number > 2 and not (subject.strip() or from_name.strip() or message_id):
            continue
        variants.append({"subject": subject, "from_name": from_name,
                         "message_id": int(message_id) if message_id.isdigit() else None})
    return {"variants": variants, "test_percent": _number(form.get("test_percent", "20")),
            "metric": form.get("metric", "opens"), "wait_hours": _number(form.get("wait_hours", "4"))}


@blueprint.route("/campaigns")
@requires("campaigns:read")
@keeps_to_lists
def index():
    with db.read(db.get_engine()) as conn:
        items = [{**c, "stats": service.progress(conn, c["id"])} for c in service.list_campaigns(conn, only=scope.only(g.actor))]
    return render_template("campaigns/index.html", items=items)


@blueprint.route("/campaigns/new", methods=["GET", "POST"])
@requires("campaigns:write")
@keeps_to_lists
def new():
    values = {"track_opens": True, "track_clicks": True, "timezone": "UTC", "utm": {}, "link_utm": {},
              "from_email": current_settings().get("audience.from_email", ""),
              "from_name": current_settings().get("audience.from_name", ""),
              "reply_to": current_settings().get("audience.reply_to", "")}
    error = None
    if request.method == "POST":
        values = _form_values()
        start_now = request.form.get("start_now") == "on"
        if start_now and not g.actor.can("campaigns:send"):
            flash(_("Your role may not start campaigns."), "error")
        else:
            try:
                with db.write(db.get_engine()) as conn:
                    campaign_id = service.create_campaign(conn, g.actor, **values)
                actions.after_create(g.actor, campaign_id, start_now=start_now,
                                     scheduled=bool(values["schedule_at"]))
                flash(_("Campaign created."), "success")
                return redirect(url_for("campaigns.show", campaign_id=campaign_id))
            except ServiceError as exc:
                flash(exc.shown(), "error")
                error = exc
    with db.read(db.get_engine()) as conn:
        choices = _choices(conn)
    return _render_form(values, choices, error)


@blueprint.route("/campaigns/messages/<int:message_id>/links.json")
@requires("campaigns:write")
@keeps_to_lists
def message_links(message_id: int):
    """The form's "Per-link UTM marks" list for the message just chosen (404: no such one)."""
    with db.read(db.get_engine()) as conn:
        service.message_links(conn, message_id)         # NotFound
    return jsonify(links=_message_links(message_id))


@blueprint.route("/campaigns/<int:campaign_id>")
@requires("campaigns:read")
@keeps_to_lists
def show(campaign_id: int):
    with db.read(db.get_engine()) as conn:
        campaign = service.get_campaign(conn, campaign_id)
        stats = service.progress(conn, campaign_id)
        problems = service.deliveries_page(conn, campaign_id, "failed", limit=50) + \
            service.deliveries_page(conn, campaign_id, "in_doubt", limit=50)
        reasons = service.failure_reasons(conn, campaign_id)
        choices = _choices(conn)
        split = splittest.overview(conn, campaign_id)
        warmup = service.warmup_holds(conn, campaign_id)
        stopped = [b for b in breakers.list_all(conn) if b["state"] == "open"]
        held = breakers.held(conn, campaign_id) if stopped else {}
    names = {m["id"]: m["name"] for m in choices["messages"]}
    list_names = {x["id"]: x["name"] for x in choices["lists"]}
    base = current_settings()["server.public_url"].rstrip("/")
    archive_links = [{"list_id": x["id"], "url": f"{base}/archive/{x['archive_slug']}",
                      "name": _("Public archive of %(name)s", name=x["name"])}
                     for x in choices["lists"] if x["id"] in campaign["list_ids"] and x["archive_slug"]]
    return render_template("campaigns/show.html", campaign=campaign, stats=stats,
                           archive_links=archive_links, late_start=service.late_start(campaign),
                           problems=problems, reasons=reasons, message_name=names.get(campaign["message_id"], ""),
                           list_names=list_names, split=split, message_names=names, warmup=warmup,
                           metric_labels=SPLIT_METRIC_LABELS, stopped=stopped, held=held,
                           provider_labels={k: _(v) for k, v in PROVIDER_LABELS.items()})


@blueprint.route("/campaigns/<int:campaign_id>/progress.json")
@requires("campaigns:read")
@keeps_to_lists
def progress(campaign_id: int):
    with db.read(db.get_engine()) as conn:
        campaign = service.get_campaign(conn, campaign_id)
        stats = service.progress(conn, campaign_id)
        # ?split=1 (every tenth poll): the variants' figures cost more than the progress
        split = splittest.overview(conn, campaign_id) if request.args.get("split") else None
    figures = None if split is None else {
        "state": split["state"], "variants": [
            {k: v[k] for k in ("variant", "recipients", "delivered", "unique_opens", "open_rate",
                               "unique_clicks", "click_rate", "click_to_open")}
            for v in split["variants"]]}
    done = stats["total"] - stats["remaining"]
    return jsonify(state=campaign["state"], state_label=_(campaign["state"]),
                   pause_reason=campaign["pause_reason"], stats=stats, split=figures,
                   done_label=_("%(percent)s%% done",
                                percent=done * 100 // stats["total"] if stats["total"] else 0))


@blueprint.route("/campaigns/<int:campaign_id>/<any(start, schedule, pause, resume, cancel):action>",
                 methods=["POST"])
@requires("campaigns:send")
@keeps_to_lists
def act(campaign_id: int, action: str):
    try:
        actions.perform(g.actor, current_settings(), campaign_id, action)
        flash({"start": _("Campaign started."), "schedule": _("Campaign scheduled."),
               "pause": _("Campaign paused."), "resume": _("Campaign resumed."),
               "cancel": _("Campaign cancelled.")}[action], "success")
    except ServiceError as exc:
        flash(exc.translated(), "error")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))


@blueprint.route("/campaigns/<int:campaign_id>/duplicate", methods=["POST"])
@requires("campaigns:write")
@keeps_to_lists
def duplicate(campaign_id: int):
    """"Duplicate": a draft copy of any campaign, opened for editing."""
    try:
        with db.write(db.get_engine()) as conn:
            source = service.get_campaign(conn, campaign_id)
            copy_id = service.duplicate_campaign(conn, g.actor, campaign_id,
                                                 _("Copy of %(name)s", name=source["name"]))
    except ServiceError as exc:
        flash(exc.translated(), "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    flash(_("Campaign duplicated: this is the copy, a draft."), "success")
    return redirect(url_for("campaigns.edit", campaign_id=copy_id))


def _edit_values(conn, campaign: dict) -> dict:
    """The edit form's values from a stored campaign (the schedule in its own time zone)."""
    values = {k: campaign[k] for k in ("name", "message_id", "list_ids", "segment_ids",
                                      "exclude_list_ids", "from_email", "from_name", "reply_to",
                                      "timezone", "utm", "link_utm", "track_opens", "track_clicks",
                                      "archive", "send_at_local")}
    if campaign["schedule_at"] is not None:
        local = campaign["schedule_at"].astimezone(zoneinfo.ZoneInfo(campaign["timezone"] or "UTC"))
        values["schedule_at"] = local.strftime("%Y-%m-%dT%H:%M")
    test = splittest.get(conn, campaign["id"])
    if test is not None:
        values["split_test"] = {k: test[k] for k in ("variants", "test_percent", "metric", "wait_hours")}
    return values


@blueprint.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@requires("campaigns:write")
@keeps_to_lists
def edit(campaign_id: int):
    """The new-campaign form for a campaign not yet started (draft or scheduled)."""
    with db.read(db.get_engine()) as conn:
        campaign = service.get_campaign(conn, campaign_id)
        values = _edit_values(conn, campaign)
        choices = _choices(conn)
    if campaign["state"] not in service.EDITABLE_STATES:
        flash(_("Only a draft or scheduled campaign can be edited."), "error")
        return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    error = None
    if request.method == "POST":
        values = _form_values()
        try:
            with db.write(db.get_engine()) as conn:
                service.update_campaign(conn, g.actor, campaign_id, **values)
            flash(_("Campaign saved."), "success")
            return redirect(url_for("campaigns.show", campaign_id=campaign_id))
        except ServiceError as exc:
            flash(exc.shown(), "error")
            error = exc
    return _render_form(values, choices, error, editing=campaign)


@blueprint.route("/campaigns/<int:campaign_id>/archive", methods=["POST"])
@requires("campaigns:write")
@keeps_to_lists
def set_archive(campaign_id: int):
    """The "Publish in the public archive" switch (any state: it changes nothing sent)."""
    published = request.form.get("archive") == "on"
    try:
        with db.write(db.get_engine()) as conn:
            service.update_campaign(conn, g.actor, campaign_id, archive=published)
        flash(_("The campaign is published in its lists' public archives once it has finished.")
              if published else _("The campaign is not in the public archive."), "success")
    except ServiceError as exc:
        flash(exc.translated(), "error")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))


@blueprint.route("/campaigns/providers/<provider>/resume", methods=["POST"])
@requires("campaigns:send")
def resume_provider(provider: str):
    """Closes a mailbox provider's circuit breaker (from a campaign page: back to it)."""
    try:
        actions.resume_provider(g.actor, provider)
        flash(_("Sending to %(provider)s resumed.", provider=_(PROVIDER_LABELS.get(provider, provider))),
              "success")
    except ServiceError as exc:
        flash(exc.translated(), "error")
    campaign_id = request.form.get("campaign_id", type=int)
    if campaign_id:
        return redirect(url_for("campaigns.show", campaign_id=campaign_id))
    return redirect(url_for("campaigns.index"))


@blueprint.route("/campaigns/<int:campaign_id>/split-test/winner", methods=["POST"])
@requires("campaigns:send")
@keeps_to_lists
def choose_winner(campaign_id: int):
    """"Pick the winner now" (by the metric) or "Send this variant" (variant=N)."""
    variant = request.form.get("variant", type=int)
    try:
        chosen = actions.choose_winner(g.actor, campaign_id, variant)
        flash(_("Variant %(letter)s is the winner; the rest of the audience gets it.",
                letter=variant_letter(chosen)), "success")
    except ServiceError as exc:
        flash(exc.translated(), "error")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))
