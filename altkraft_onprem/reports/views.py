"""Reports UI: campaign report, clickmap, cohorts, engagement (charts with Chart.js), CSV exports,
and the dashboard tiles."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from altkraft_onprem import db
from altkraft_onprem.access import scope
from altkraft_onprem.access.policy import keeps_to_lists, requires
from altkraft_onprem.audience import segments
from altkraft_onprem.audience.models import lists, subscribers
from altkraft_onprem.config import current_settings
from altkraft_onprem.delivery.providers import PROVIDER_LABELS
from altkraft_onprem.errors import ServiceError

from . import campaign as campaign_report
from . import clickmap as clickmaps
from . import cohorts as cohort_report
from . import engagement as engagement_report
from . import export

blueprint = Blueprint("reports", __name__, url_prefix="/reports")


def _csv(text: str, name: str) -> Response:
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}"})


def _lists(conn) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(select(lists.c.id, lists.c.name).order_by(lists.c.name))]


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) > 2**31 - 1:
        flash(_("%(field)s must be a number; the filter was ignored.", field=name), "error")
        return None
    return int(raw)


def _choice_arg(name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default)
    if value not in choices:
        flash(_("%(field)s must be one of %(choices)s; showing %(default)s.", field=name,
                choices=", ".join(choices), default=default), "error")
        return default
    return value


def _date_arg(name: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        flash(_("%(field)s must be a date like 2026-01-31; the filter was ignored.", field=name), "error")
        return None


@blueprint.app_context_processor
def tiles():
    return {"report_tiles": dashboard_tiles}


def dashboard_tiles() -> dict:
    """Last campaigns' results and list growth, for the dashboard (called from its template)."""
    actor = g.get("actor")
    if actor is None or not actor.can("reports:read") or scope.limited(actor):
        return {}        # a role limited to some lists: the tiles add up every list
    with db.read(db.get_engine()) as conn:
        return {"campaigns": campaign_report.recent_campaigns(conn, limit=5),
                "growth": engagement_report.list_growth(conn, days=30)}


@blueprint.route("/")
@requires("reports:read")
@keeps_to_lists
def index():
    with db.read(db.get_engine()) as conn:
        rows = campaign_report.recent_campaigns(conn, limit=20, only=scope.only(g.actor))
    return render_template("reports/index.html", campaigns=rows)


def _campaign_data(campaign_id: int, unit: str, variant: int | None = None):
    with db.read(db.get_engine()) as conn:
        info = campaign_report.campaign_row(conn, campaign_id)
        info["split_variants"] = clickmaps.split_variants(conn, campaign_id)
        summary = campaign_report.summary(conn, campaign_id, variant)
        timeline = campaign_report.over_time(conn, campaign_id, unit, variant)
        domains = campaign_report.by_domain(conn, campaign_id, variant=variant)
        clients = campaign_report.by_client(conn, campaign_id, variant)
    return info, summary, timeline, domains, clients


@blueprint.route("/campaigns/<int:campaign_id>")
@requires("reports:read")
@keeps_to_lists
def campaign(campaign_id: int):
    unit = _choice_arg("unit", ("hour", "day"), "hour")
    info, summary, timeline, domains, clients = _campaign_data(campaign_id, unit, _variant_arg())
    charts = {
        "timeline": {"type": "line", "axis": _("Time"), "data": {"labels": timeline["labels"], "datasets": [
            {"label": _("Opens"), "data": timeline["opens"]},
            {"label": _("Human opens"), "data": timeline["human_opens"]},
            {"label": _("Clicks"), "data": timeline["clicks"]},
            {"label": _("Human clicks"), "data": timeline["human_clicks"]}]}},
        "reads": {"type": "doughnut", "axis": _("Reading time"), "data": {
            "labels": [_("Glanced"), _("Skimmed"), _("Read"), _("Not measurable")],
            "datasets": [{"data": [summary["reads"]["glanced"], summary["reads"]["skimmed"],
                                   summary["reads"]["read"], summary["reads"]["not_measurable"]]}]}},
        "clients": {"type": "bar", "axis": _("Mail client"), "data": {"labels": [c["name"] for c in clients["clients"]],
                                            "datasets": [{"label": _("Opens"),
                                                          "data": [c["opens"] for c in clients["clients"]]}]}},
        "devices": {"type": "doughnut", "axis": _("Device"), "data": {"labels": [d["name"] for d in clients["devices"]],
                                                 "datasets": [{"data": [d["opens"] for d in clients["devices"]]}]}},
    }
    provider_names = {k: _(v) for k, v in PROVIDER_LABELS.items()}
    settings = current_settings()
    return render_template("reports/campaign.html", campaign=info, s=summary, domains=domains,
                           provider_names=provider_names,
                           clients=clients, charts=charts, unit=unit, variant=summary["variant"],
                           glance_seconds=settings["tracking.glance_seconds"],
                           read_seconds=settings["tracking.read_seconds"])


@blueprint.route("/campaigns/<int:campaign_id>/report.csv")
@requires("reports:read")
@keeps_to_lists
def campaign_csv(campaign_id: int):
    _, summary, timeline, domains, _clients = _campaign_data(campaign_id, "hour", _variant_arg())
    return _csv(export.campaign_csv(summary, timeline, domains), f"campaign-{campaign_id}-report.csv")


def _version_arg() -> int | None:
    return _int_arg("version")


def _variant_arg() -> int | None:
    """A split test's variant (1 = A …); reports of the whole campaign without it."""
    return _int_arg("variant")


@blueprint.route("/campaigns/<int:campaign_id>/clickmap")
@requires("reports:read")
@keeps_to_lists
def clickmap(campaign_id: int):
    version, variant = _version_arg(), _variant_arg()
    with db.read(db.get_engine()) as conn:
        info = campaign_report.campaign_row(conn, campaign_id)
        try:
            data = clickmaps.clickmap(conn, campaign_id, version, variant)
        except ServiceError as exc:
            flash(exc.translated(), "error")
            data = clickmaps.clickmap(conn, campaign_id, None)
    return render_template("reports/clickmap.html", campaign=info, data=data)


@blueprint.route("/campaigns/<int:campaign_id>/clickmap/frame")
@requires("reports:read")
@keeps_to_lists
def clickmap_frame(campaign_id: int):
    with db.read(db.get_engine()) as conn:
        html = clickmaps.annotated_html(conn, campaign_id, _version_arg(), _variant_arg(), str(get_locale()))
    response = Response(html, mimetype="text/html")
    # the message's own markup: no scripts at all, same-origin framing only
    response.headers["Content-Security-Policy"] = ("default-src 'none'; img-src https: http: data:; "
                                                   "style-src 'unsafe-inline'; frame-ancestors 'self'")
    return response


@blueprint.route("/campaigns/<int:campaign_id>/clickmap.csv")
@requires("reports:read")
@keeps_to_lists
def clickmap_csv(campaign_id: int):
    with db.read(db.get_engine()) as conn:
        data = clickmaps.clickmap(conn, campaign_id, _version_arg(), _variant_arg())
    return _csv(export.clickmap_csv(data), f"campaign-{campaign_id}-clickmap-v{data['version']}.csv")


def _cohort_args() -> dict:
    return {"period": _choice_arg("period", ("month", "week"), "month"),
            "metric": _choice_arg("metric", ("open", "click"), "open"),
            "list_id": _int_arg("list_id"), "source": request.args.get("source", "").strip() or None}


@blueprint.route("/cohorts")
@requires("reports:read")
def cohorts():
    args = _cohort_args()
    with db.read(db.get_engine()) as conn:
        data = cohort_report.cohorts(conn, **args)
        lists, sources = _lists(conn), cohort_report.sources(conn)
    chart = {"type": "line", "axis": _("Period after joining"), "data": {"labels": [str(k) for k in data["columns"]], "datasets": [
        {"label": row["cohort"], "data": row["shares"]} for row in data["rows"][-6:]]}}
    return render_template("reports/cohorts.html", data=data, args=args, lists=lists, sources=sources,
                           charts={"cohorts": chart})


@blueprint.route("/cohorts.csv")
@requires("reports:read")
def cohorts_csv():
    with db.read(db.get_engine()) as conn:
        data = cohort_report.cohorts(conn, **_cohort_args())
    return _csv(export.cohorts_csv(data), "cohorts.csv")


@blueprint.route("/cohorts/segment", methods=["GET", "POST"])
@requires("lists:write")
def cohort_segment():
    """A heatmap cell -> its cohort as a saved segment (confirm, then create)."""
    source = request.values.get("source", "").strip() or None
    period = request.values.get("period", "month")
    cohort = request.values.get("cohort", "")
    list_raw = request.values.get("list_id", "")
    list_id = int(list_raw) if list_raw.isdigit() else None
    try:
        conditions = cohort_report.segment_conditions(cohort, period, list_id, source)
    except ValueError:
        abort(404)
    default_name = _("Joined %(cohort)s (%(period)s)", cohort=cohort, period=period)
    if request.method == "POST":
        name = request.form.get("name", "").strip() or default_name
        try:
            with db.write(db.get_engine()) as conn:
                segment_id = segments.create_segment(conn, g.actor, name, conditions,
                                                     description=_("From the cohort report"))
        except ServiceError as exc:
            flash(exc.translated(), "error")
        else:
            flash(_("Segment “%(name)s” created (id %(id)s).", name=name, id=segment_id), "success")
            return redirect(url_for("reports.cohorts", period=period, list_id=list_id or "", source=source or ""))
    with db.read(db.get_engine()) as conn:
        where = segments.matching(conn, segments.validate(conn, conditions))
        size = conn.execute(select(func.count()).select_from(subscribers).where(where)).scalar()
    return render_template("reports/cohort_segment.html", cohort=cohort, period=period, list_id=list_id,
                           source=source, name=default_name, size=size)


def _engagement_args() -> dict:
    period = _choice_arg("period", ("day", "week", "month"), "day")
    since, until = _date_arg("since"), _date_arg("until")
    if until is not None:
        until = until + timedelta(days=1)                 # the chosen last day is included
    if since is not None and until is not None and since >= until:
        flash(_("The start must be before the end; showing the default range."), "error")
        since = until = None
    return {"period": period, "list_id": _int_arg("list_id"), "since": since, "until": until}


@blueprint.route("/engagement")
@requires("reports:read")
def engagement():
    args = _engagement_args()
    with db.read(db.get_engine()) as conn:
        data = engagement_report.engagement(conn, **args)
        lists = _lists(conn)
    chart = {"type": "bar", "data": {"labels": data["labels"], "datasets": [
        {"label": _("New"), "data": data["new"]},
        {"label": _("Unsubscribes"), "data": [-n for n in data["unsubscribes"]]},
        {"label": _("Bounces"), "data": [-n for n in data["bounces"]]},
        {"label": _("Complaints"), "data": [-n for n in data["complaints"]]},
        {"label": _("Net growth"), "data": data["net"], "type": "line"}]}}
    return render_template("reports/engagement.html", data=data, args=args, lists=lists,
                           charts={"engagement": chart})


@blueprint.route("/engagement.csv")
@requires("reports:read")
def engagement_csv():
    with db.read(db.get_engine()) as conn:
        data = engagement_report.engagement(conn, **_engagement_args())
    return _csv(export.engagement_csv(data), "engagement.csv")
