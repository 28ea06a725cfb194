"""UI routes of automation: workflows (list, the visual builder, publish, pause, enroll, who is
where and why) and webhook subscriptions with their delivery log."""
from __future__ import annotations

import json

from flask import Blueprint, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from altkraft_onprem import db
from altkraft_onprem.access.policy import requires
from altkraft_onprem.audience import lists as list_service
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.subscribers import find_by_email, render_context
from altkraft_onprem.config import current_settings
from altkraft_onprem.errors import ServiceError

from . import bulk, enrollment, jobs, timing, webhooks, workflows
from .definition import BRANCHES, CONFIGS, TRIGGER_TYPES
from .models import DELIVERY_STATES, WEBHOOK_EVENT_TYPES

blueprint = Blueprint("automation", __name__, url_prefix="/automation")


def _failed(exc: ServiceError) -> None:
    flash(exc.shown(), "error")


@blueprint.route("")
@requires("automation:read")
def index():
    with db.read(db.get_engine()) as conn:
        items = workflows.list_workflows(conn)
    return render_template("automation/index.html", items=items)


@blueprint.route("/workflows", methods=["POST"])
@requires("automation:write")
def create():
    name = request.form.get("name", "").strip()
    draft = {"name": name, "trigger": {"type": "manual"}, "entry": {"reentry": "once"},
             "graph": {"start": "", "nodes": [], "edges": []}}
    try:
        with db.write(db.get_engine()) as conn:
            workflow_id = workflows.create(conn, g.actor, draft)
    except ServiceError as exc:
        _failed(exc)
        return redirect(url_for("automation.index"))
    return redirect(url_for("automation.builder", workflow_id=workflow_id))


def _why(item: dict, nodes: dict, zone_name: str | None) -> str:
    """Where a person is and why, in words: "waiting at Wait 3 days until … Europe/Moscow"."""
    node = nodes.get(item["node_id"]) or {}
    label = node.get("name") or item["node_id"] or "—"
    if item["state"] != "active" and item["state"] != "parked":
        return item["end_reason"] or _(item["state"])
    if item["state"] == "parked":
        return _("stopped at %(node)s: %(reason)s", node=label, reason=item["end_reason"] or "")
    if item["waiting_until"] is not None:
        tz = timing.zone(zone_name)
        moment = item["waiting_until"].astimezone(tz).strftime("%Y-%m-%d %H:%M")
        if item["waiting_for"]:
            return _("waiting at %(node)s for %(event)s until %(time)s %(zone)s", node=label,
                     event=item["waiting_for"], time=moment, zone=tz.key)
        return _("waiting at %(node)s until %(time)s %(zone)s", node=label, time=moment, zone=tz.key)
    return _("about to run %(node)s", node=label)


@blueprint.route("/workflows/<int:workflow_id>")
@requires("automation:read")
def builder(workflow_id: int):
    with db.read(db.get_engine()) as conn:
        workflow = workflows.get(conn, workflow_id)
        stats = enrollment.stats(conn, workflow_id)
        people, total = enrollment.page(conn, workflow_id, limit=50)
        parked = enrollment.page(conn, workflow_id, state="parked", limit=1)[1]
        segments = segment_service.list_segments(conn)
        enrolling = bulk.pending(conn, workflow_id)
        zones = _zones(conn, [p["subscriber_id"] for p in people])
    nodes = {n.get("id"): n for n in (workflow["draft"].get("graph") or {}).get("nodes", [])
             if isinstance(n, dict)}
    zone_default = workflow["draft"].get("timezone")
    for item in people:
        item["why"] = _why(item, nodes, zones.get(item["subscriber_id"]) or zone_default)
    return render_template(
        "automation/workflow.html", workflow=workflow, stats=stats, people=people, total=total,
        parked=parked, segments=segments, enrolling=enrolling,
        node_types=sorted(CONFIGS), branches={t: list(bs) for t, bs in BRANCHES.items()},
        trigger_types=list(TRIGGER_TYPES))


def _zones(conn, subscriber_ids: list[int]) -> dict[int, str | None]:
    return {sid: person.get("timezone") or None
            for sid, person in render_context(conn, subscriber_ids).items()}


@blueprint.route("/workflows/<int:workflow_id>/draft", methods=["POST"])
@requires("automation:write")
def save_draft(workflow_id: int):
    """The builder saves the workflow JSON (fetch, CSRF header)."""
    try:
        with db.write(db.get_engine()) as conn:
            workflows.update_draft(conn, g.actor, workflow_id, request.get_json(silent=True))
    except ServiceError as exc:
        return jsonify(error=exc.translated(), field=exc.field), exc.status
    return jsonify(saved=True)


@blueprint.route("/workflows/<int:workflow_id>/<action>", methods=["POST"])
@requires("automation:write")
def act(workflow_id: int, action: str):
    engine = db.get_engine()
    try:
        with db.write(engine) as conn:
            if action == "publish":
                result = workflows.publish(conn, g.actor, workflow_id,
                                           _node_map(request.form.get("node_map", "")),
                                           wake=jobs.wake)
                message = _("Version %(number)s published.", number=result["version"])
            elif action == "pause":
                workflows.pause(conn, g.actor, workflow_id)
                message = _("Workflow paused.")
            elif action == "archive":
                if request.form.get("confirm") != "on":
                    raise ServiceError("confirm that everyone inside leaves to archive the "
                                       "workflow", "confirm")
                workflows.archive(conn, g.actor, workflow_id, wake=jobs.wake)
                message = _("Workflow archived.")
            elif action == "resume":
                resumed = workflows.resume(conn, g.actor, workflow_id, wake=jobs.wake)
                message = ngettext("%(num)s person goes on from the step where they stopped.",
                                   "%(num)s people go on from the step where they stopped.", resumed)
            elif action == "enroll":
                segment = request.form.get("segment_id", "")
                ids = None if segment.isdigit() else _people(conn, request.form.get("people", ""))
                result = workflows.enroll(conn, g.actor, workflow_id, subscriber_ids=ids,
                                          segment_id=int(segment) if segment.isdigit() else None,
                                          test=request.form.get("test") == "on", wake=jobs.wake)
                message = (_("%(asked)s people are being enrolled in the background.", asked=result["asked"])
                           if result["queued"] else
                           _("%(entered)s of %(asked)s enrolled.", entered=result["entered"],
                             asked=result["asked"]))
            else:
                return ("", 404)
        flash(message, "success")
    except ServiceError as exc:
        _failed(exc)
    return redirect(url_for("automation.builder", workflow_id=workflow_id))


def _node_map(text: str) -> dict[str, str] | None:
    """The publish form's node map: a JSON object of step ids, or nothing."""
    if not text.strip():
        return None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in found.items()):
        raise ServiceError('the node map must be a JSON object of step ids, e.g. '
                           '{"wait1": "wait3"}', "node_map")
    return found


def _people(conn, text: str) -> list[int]:
    """Subscriber ids or email addresses, one per line or comma."""
    ids = []
    for item in text.replace(",", "\n").split():
        if item.isdigit():
            ids.append(int(item))
            continue
        found = find_by_email(conn, item)
        if found is None:
            raise ServiceError("%(value)s is not a subscriber", "people", value=item)
        ids.append(found["id"])
    if not ids:
        raise ServiceError("name at least one subscriber", "people")
    return ids


# --- webhooks ---------------------------------------------------------------------------------

@blueprint.route("/webhooks")
@requires("automation:read")
def webhook_list():
    with db.read(db.get_engine()) as conn:
        items = webhooks.list_webhooks(conn)
        all_lists = list_service.list_lists(conn, counts=False)
    names = {item["id"]: item["name"] for item in all_lists}
    return render_template("automation/webhooks.html", items=items, event_types=WEBHOOK_EVENT_TYPES,
                           lists=all_lists, list_names=names)


def _list_id(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


@blueprint.route("/webhooks", methods=["POST"])
@requires("automation:write")
def webhook_create():
    try:
        with db.write(db.get_engine()) as conn:
            created = webhooks.create(conn, g.actor, current_settings(), url=request.form.get("url", ""),
                                      events=request.form.getlist("events"),
                                      list_id=_list_id(request.form.get("list_id")),
                                      description=request.form.get("description", ""))
    except ServiceError as exc:
        _failed(exc)
        return redirect(url_for("automation.webhook_list"))
    flash(_("Webhook created. Its secret (shown once): %(secret)s", secret=created["secret"]), "success")
    return redirect(url_for("automation.webhook_show", webhook_id=created["id"]))


@blueprint.route("/webhooks/<int:webhook_id>")
@requires("automation:read")
def webhook_show(webhook_id: int):
    state = request.args.get("state") if request.args.get("state") in DELIVERY_STATES else None
    with db.read(db.get_engine()) as conn:
        item = webhooks.get(conn, webhook_id)
        log, total = webhooks.deliveries(conn, webhook_id, state=state, limit=100)
        list_name = (list_service.get_list(conn, item["list_id"], counts=False)["name"]
                     if item.get("list_id") else None)
    return render_template("automation/webhook.html", item=item, log=log, total=total,
                           state=state, states=DELIVERY_STATES, list_name=list_name)


@blueprint.route("/webhooks/<int:webhook_id>/active", methods=["POST"])
@requires("automation:write")
def webhook_toggle(webhook_id: int):
    active = request.form.get("active") == "1"
    with db.write(db.get_engine()) as conn:
        webhooks.update_webhook(conn, g.actor, current_settings(), webhook_id, active=active)
    if active:
        jobs.deliver_webhooks()
    flash(_("Webhook switched on.") if active else _("Webhook switched off."), "success")
    return redirect(url_for("automation.webhook_show", webhook_id=webhook_id))


@blueprint.route("/webhooks/<int:webhook_id>/secret", methods=["POST"])
@requires("automation:write")
def webhook_rotate(webhook_id: int):
    with db.write(db.get_engine()) as conn:
        found = webhooks.update_webhook(conn, g.actor, current_settings(), webhook_id,
                                        rotate_secret=True)
    flash(_("A new secret (shown once): %(secret)s. Requests carry the previous one's "
            "signature too until the next change.", secret=found["secret"]), "success")
    return redirect(url_for("automation.webhook_show", webhook_id=webhook_id))


@blueprint.route("/webhooks/<int:webhook_id>/delete", methods=["POST"])
@requires("automation:write")
def webhook_delete(webhook_id: int):
    with db.write(db.get_engine()) as conn:
        webhooks.delete_webhook(conn, g.actor, webhook_id)
    flash(_("Webhook deleted."), "success")
    return redirect(url_for("automation.webhook_list"))


@blueprint.route("/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@requires("automation:write")
def webhook_redeliver(webhook_id: int, delivery_id: int):
    with db.write(db.get_engine()) as conn:
        webhooks.redeliver(conn, g.actor, webhook_id, delivery_id)
    jobs.deliver_webhooks()
    flash(_("The event is sent again."), "success")
    return redirect(url_for("automation.webhook_show", webhook_id=webhook_id))
