"""REST: campaign report, clickmap, cohorts, engagement (the figures of the report pages)."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import operation
from altkraft_onprem.errors import ServiceError

from . import campaign as campaign_report
from . import clickmap as clickmaps
from . import cohorts as cohort_report
from . import engagement as engagement_report

TAG = "Reports"
MAX_ID = 2**31 - 1


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Opens(BaseModel):
    unique: int
    total: int
    human: int
    machine: int


class Reads(BaseModel):
    glanced: int
    skimmed: int
    read: int
    not_measurable: int
    not_measurable_percent: float
    avg_seconds: float | None = Field(description="Average over measured streams only")


class Clicks(BaseModel):
    unique: int
    total: int
    human: int
    machine: int


class Bounces(BaseModel):
    hard: int = Field(description="Dead addresses (suppressed at once)")
    soft: int = Field(description="Temporary failures: mailbox full, timeouts")
    policy: int = Field(description="Blocks that are not the recipient's fault: blocklists, "
                        "authentication, content")


class ProviderFeedback(BaseModel):
    provider: Literal["gmail", "outlook", "yahoo", "mailru", "yandex", "other"]
    hard: int
    soft: int
    policy: int
    complaints: int


class CampaignReport(BaseModel):
    campaign_id: int
    delivered: int
    failed: int
    in_doubt: int
    pending: int
    total: int
    opens: Opens
    reads: Reads
    clicks: Clicks
    open_rate: float = Field(description="% of delivered with a human open")
    ctr: float = Field(description="% of delivered with a human click")
    click_to_open: float = Field(description="% of human openers who clicked")
    unsubscribes: int
    unsubscribe_rate: float
    bounces: Bounces = Field(description="Bounces that came back (by mail, webhook or as the "
                             "relay's 5xx), by class")
    complaints: int = Field(description="Spam complaints (feedback loops)")
    bounce_rate: float = Field(description="% of the messages tried that bounced (hard, soft, policy)")
    complaint_rate: float = Field(description="% of delivered that drew a complaint")
    by_provider: list[ProviderFeedback] = Field(description="Bounces and complaints by mailbox provider")
    variant: int | None = Field(None, description="The split-test variant the figures are of")
    held: int = Field(0, description="A split test's rest of the audience, waiting for the winner")


class ReportQuery(BaseModel):
    # Other parameters stay ignored, as they were before this one existed.
    variant: int | None = Field(None, ge=1, le=5, description="A split test's variant (1 = A, …): "
                                "the figures of its recipients only")


class ClickmapQuery(Query):
    version: int | None = Field(None, ge=1, le=MAX_ID, description="Message version number; default: the pinned one")
    variant: int | None = Field(None, ge=1, le=5, description="A split test's variant (1 = A, …): "
                                "its message version and the figures of its recipients")


class LinkFigures(BaseModel):
    index: int
    url: str
    unique_clicks: int
    clicks: int
    machine_clicks: int
    percent: float


class VersionRef(BaseModel):
    id: int
    version: int
    subject: str


class VariantRef(BaseModel):
    variant: int
    letter: str
    version_id: int
    version: int | None
    subject: str
    winner: bool


class Clickmap(BaseModel):
    campaign_id: int
    version: int
    version_id: int
    recipients: int
    versions: list[VersionRef]
    links: list[LinkFigures]
    variant: int | None = None
    variants: list[VariantRef] = Field(default_factory=list, description="A split test's variants")


class CohortQuery(Query):
    period: Literal["month", "week"] = "month"
    metric: Literal["open", "click"] = "open"
    list_id: int | None = Field(None, ge=1, le=MAX_ID)
    source: str | None = Field(None, max_length=100)
    periods: int = Field(12, ge=1, le=60)


class CohortRow(BaseModel):
    cohort: str
    size: int
    counts: list[int]
    shares: list[float]


class Cohorts(BaseModel):
    period: str
    metric: str
    list_id: int | None
    source: str | None
    columns: list[int]
    rows: list[CohortRow]


class EngagementQuery(Query):
    period: Literal["day", "week", "month"] = "day"
    list_id: int | None = Field(None, ge=1, le=MAX_ID)
    since: date | None = Field(None, description="First day (UTC), inclusive")
    until: date | None = Field(None, description="Last day (UTC), inclusive; not before `since`")


class Engagement(BaseModel):
    period: str
    list_id: int | None
    since: datetime
    until: datetime
    labels: list[str]
    new: list[int]
    unsubscribes: list[int]
    bounces: list[int]
    complaints: list[int]
    net: list[int]
    totals: dict[str, int]


@operation("/campaigns/<int:campaign_id>/report", "GET", lists=True, permission="reports:read",
           summary="A campaign's report: delivery, opens, reading time, clicks, rates", tag=TAG,
           query=ReportQuery, response=CampaignReport)
def campaign_summary(campaign_id: int, query: ReportQuery):
    with db.read(db.get_engine()) as conn:
        return campaign_report.summary(conn, campaign_id, query.variant)


@operation("/campaigns/<int:campaign_id>/clickmap", "GET", lists=True, permission="reports:read",
           summary="Per link of one sent version: unique clicks, clicks, % of recipients", tag=TAG,
           query=ClickmapQuery, response=Clickmap)
def campaign_clickmap(campaign_id: int, query: ClickmapQuery):
    with db.read(db.get_engine()) as conn:
        return clickmaps.clickmap(conn, campaign_id, query.version, query.variant)


def _day(value: date | None) -> datetime | None:
    return datetime.combine(value, datetime.min.time(), tzinfo=UTC) if value else None


@operation("/reports/cohorts", "GET", permission="reports:read",
           summary="Share of each join cohort that opened/clicked in each following period", tag=TAG,
           query=CohortQuery, response=Cohorts)
def cohorts(query: CohortQuery):
    with db.read(db.get_engine()) as conn:
        return cohort_report.cohorts(conn, period=query.period, metric=query.metric, list_id=query.list_id,
                                     source=query.source, periods_shown=query.periods)


@operation("/reports/engagement", "GET", permission="reports:read",
           summary="New subscribers vs unsubscribes, bounces, complaints per period; net growth", tag=TAG,
           query=EngagementQuery, response=Engagement)
def engagement(query: EngagementQuery):
    since = _day(query.since)
    until = _day(query.until)
    if until is not None:
        until += timedelta(days=1)
    if since is not None and until is not None and since >= until:
        raise ServiceError("since must not be after until", "since")
    with db.read(db.get_engine()) as conn:
        return engagement_report.engagement(conn, period=query.period, list_id=query.list_id,
                                            since=since, until=until)
