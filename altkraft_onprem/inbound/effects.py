"""What a verdict does: bounces and complaints recorded, addresses suppressed, mailto
unsubscribes carried out, alerts raised, the domain events emitted — for one report
(`record_bounce`, `record_complaint`: relay refusals, webhooks, the API, the one-by-one
fallback) or for a batch of the pipeline's verdicts in a few set-based statements
(`apply_batch`), with the same outcome as one by one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, distinct, func, insert, select, update

from altkraft_onprem import events
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns.models import campaigns, unsubscribe_list
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery import providers
from altkraft_onprem.tracking.models import CLICK, OPEN, tracking_events

from . import dmarc, monitor
from .models import bounces, complaints
from .pipeline import Verdict

ACTOR = system_actor("inbound mail")
ALERT_CLASSES = ("policy", "content")

# Built once: they run per report, and building a statement costs more than running it.
_PERSON = select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id == bindparam("sid"))
_INSERT_BOUNCE = insert(bounces).returning(bounces.c.id)
_INSERT_BOUNCES = insert(bounces).returning(bounces.c.id, sort_by_parameter_order=True)
_INSERT_COMPLAINT = insert(complaints).returning(complaints.c.id)
_INSERT_COMPLAINTS = insert(complaints).returning(complaints.c.id, sort_by_parameter_order=True)
_MARK_SUPPRESSED = update(bounces).where(bounces.c.id.in_(bindparam("ids", expanding=True))).values(
    suppressed=True)
_LAST_ENGAGED = select(func.max(tracking_events.c.at)).where(
    tracking_events.c.subscriber_id == bindparam("sid"), tracking_events.c.kind.in_((OPEN, CLICK)),
    tracking_events.c.machine.is_(False))
_SOFT_SINCE = select(func.count(), func.count(distinct(bounces.c.campaign_id))).where(
    bounces.c.subscriber_id == bindparam("sid"), bounces.c.bounce_class == "soft",
    bounces.c.at > bindparam("since"))


def effects(conn: Connection, settings, inbound_id: int, verdict: Verdict) -> None:
    """What one claimed message's verdict does (the one-by-one path)."""
    if verdict.report is not None:
        dmarc.store(conn, inbound_id, verdict.report)
        return
    found = verdict.attribution
    if found is not None and verdict.outcome == "deferred":
        person = conn.execute(_PERSON, {"sid": found.subscriber_id}).first()
        if person is not None:
            monitor.check_breaker(conn, settings, found.campaign_id, providers.provider(person.email))
        return
    if found is None or verdict.state not in ("processed", "review"):
        return
    person = conn.execute(_PERSON, {"sid": found.subscriber_id}).first()
    if verdict.outcome == "unsubscribe":
        if person is not None:
            mailto_unsubscribe(conn, found.subscriber_id, found.campaign_id)
        return
    email = person.email if person else (verdict.recipient.address if verdict.recipient else "")
    if verdict.outcome == "bounce" and verdict.recipient is not None:
        record_bounce(conn, settings, inbound_id=inbound_id, source=verdict.source,
                      subscriber_id=found.subscriber_id if person else None,
                      campaign_id=found.campaign_id, email=email, recipient=verdict.recipient,
                      bounce_class=verdict.bounce_class, rule=verdict.rule,
                      rules_version=verdict.rules_version)
    elif verdict.outcome == "complaint" and verdict.state == "processed":
        record_complaint(conn, settings, inbound_id=inbound_id, source=verdict.source,
                         subscriber_id=found.subscriber_id if person else None,
                         campaign_id=found.campaign_id, email=email,
                         feedback_type=verdict.feedback_type, reporter=verdict.reporter)


def mailto_unsubscribe(conn: Connection, subscriber_id: int, campaign_id: int | None) -> list[int]:
    """A mail to the message's List-Unsubscribe mailto address: the same unsubscribe as the
    one-click POST of that message (its campaign's only list, else everything)."""
    list_ids = conn.execute(select(campaigns.c.list_ids).where(
        campaigns.c.id == campaign_id)).scalar() if campaign_id else None
    return audience.unsubscribe(conn, subscriber_id, unsubscribe_list(list_ids), campaign_id,
                                form="mailto")


def _bounce_row(inbound_id, source, subscriber_id, campaign_id, email, provider, recipient,
                bounce_class, rule, rules_version, now) -> dict:
    return {"inbound_id": inbound_id, "at": now, "source": source, "subscriber_id": subscriber_id,
            "campaign_id": campaign_id, "email": email[:320], "provider": provider,
            "bounce_class": bounce_class, "rule": rule, "rules_version": rules_version,
            "status": recipient.status[:16], "action": recipient.action[:16],
            "diagnostic": recipient.diagnostic[:2000], "remote_mta": recipient.remote_mta[:255],
            "suppressed": False}


def hard_reason(recipient) -> str:
    code = f" {recipient.status}" if recipient.status else ""
    return f"hard bounce{code}: {recipient.diagnostic}"[:200]


def _soft_reason(settings, count: int, recipient) -> str:
    code = f" {recipient.status}" if recipient.status else ""
    return f"{count} soft bounces in {settings['inbound.soft_bounce_days']} days{code}"[:200]


def _complaint_reason(feedback_type: str, reporter: str) -> str:
    return f"spam complaint ({feedback_type})" + (f" through {reporter}" if reporter else "")


def mark_suppressed(conn: Connection, bounce_ids: list[int]) -> None:
    """Notes on these bounces that they suppressed their address (the one place that does)."""
    if bounce_ids:
        conn.execute(_MARK_SUPPRESSED, {"ids": bounce_ids})


def record_bounce(conn: Connection, settings, *, inbound_id: int | None, source: str,
                  subscriber_id: int | None, campaign_id: int | None, email: str, recipient,
                  bounce_class: str, rule: str, rules_version: int) -> int:
    """Records a classified bounce, suppresses the address when its class (or the soft-bounce
    count) says so, and emits email.bounced. Returns the bounce id."""
    now = utcnow()
    provider = providers.provider(email)
    bounce_id = conn.execute(_INSERT_BOUNCE, _bounce_row(
        inbound_id, source, subscriber_id, campaign_id, email, provider, recipient, bounce_class,
        rule, rules_version, now)).scalar_one()
    suppressed = False
    if subscriber_id is not None and email:
        reason = _suppression_reason(conn, settings, subscriber_id, bounce_class, recipient, now)
        if reason:
            audience.suppress(conn, ACTOR, email=email, reason=reason, source="bounce")
            mark_suppressed(conn, [bounce_id])
            suppressed = True
        if bounce_class in ALERT_CLASSES:
            monitor.raise_alert(conn, bounce_class, "warning", campaign_id, provider,
                                f"{recipient.status} {recipient.diagnostic}".strip()[:500])
            monitor.check_breaker(conn, settings, campaign_id, provider)
        events.EMAIL_BOUNCED.emit(conn, bounce_id=bounce_id, subscriber_id=subscriber_id,
                                  campaign_id=campaign_id, email=email, bounce_class=bounce_class,
                                  status=recipient.status, provider=provider, suppressed=suppressed)
    return bounce_id


def _suppression_reason(conn: Connection, settings, subscriber_id: int, bounce_class: str,
                        recipient, now: datetime) -> str:
    """Why this bounce suppresses the address ("" when it does not): a hard bounce at once; a
    soft one when it is the inbound.soft_bounce_limit-th since the last open or click within
    inbound.soft_bounce_days, over at least two campaigns."""
    if bounce_class == "hard":
        return hard_reason(recipient)
    if bounce_class != "soft":
        return ""
    since = now - timedelta(days=settings["inbound.soft_bounce_days"])
    engaged = conn.execute(_LAST_ENGAGED, {"sid": subscriber_id}).scalar()
    if engaged is not None and engaged > since:
        since = engaged
    count, sends = conn.execute(_SOFT_SINCE, {"sid": subscriber_id, "since": since}).one()
    if count >= settings["inbound.soft_bounce_limit"] and sends >= 2:
        return _soft_reason(settings, count, recipient)
    return ""


def record_complaint(conn: Connection, settings, *, inbound_id: int | None, source: str,
                     subscriber_id: int | None, campaign_id: int | None, email: str,
                     feedback_type: str, reporter: str = "") -> int:
    """Records a spam complaint, suppresses the address from everything, emits
    email.complained, and checks the campaign's complaint rate at that provider."""
    provider = providers.provider(email)
    complaint_id = conn.execute(_INSERT_COMPLAINT, {
        "inbound_id": inbound_id, "at": utcnow(), "source": source, "subscriber_id": subscriber_id,
        "campaign_id": campaign_id, "email": email[:320], "provider": provider,
        "feedback_type": feedback_type[:16], "reporter": reporter[:200]}).scalar_one()
    if subscriber_id is not None and email:
        audience.suppress(conn, ACTOR, email=email, source="complaint",
                          reason=_complaint_reason(feedback_type, reporter))
        events.EMAIL_COMPLAINED.emit(conn, complaint_id=complaint_id, subscriber_id=subscriber_id,
                                     campaign_id=campaign_id, email=email,
                                     feedback_type=feedback_type, provider=provider)
        monitor.check_complaints(conn, settings, campaign_id, provider)
        monitor.check_breaker(conn, settings, campaign_id, provider)
    return complaint_id


# --- a batch of verdicts ------------------------------------------------------------------

@dataclass
class _Report:
    """One bounce or complaint of a batch, on its way to the tables."""
    index: int                      # its place in the batch: suppressions keep that order
    verdict: Verdict
    inbound_id: int
    subscriber_id: int | None       # None: attributed, but the person is gone
    email: str
    provider: str
    reason: str = ""


def apply_batch(conn: Connection, settings, claimed: list[tuple[int, Verdict]]) -> None:
    """The effects of claimed messages' verdicts, as `effects` one by one would leave them,
    in a few statements per batch. DMARC reports and mailto unsubscribes (rare) go one by
    one. Raises on any failure: the caller rolls the batch back and goes one by one."""
    wanted = {v.attribution.subscriber_id for _, v in claimed
              if v.attribution is not None and v.report is None
              and (v.state in ("processed", "review") or v.outcome == "deferred")}
    people = dict(conn.execute(select(subscribers.c.id, subscribers.c.email).where(
        subscribers.c.id.in_(wanted))).all()) if wanted else {}
    bounced: list[_Report] = []
    complained: list[_Report] = []
    judged: dict[tuple, None] = {}          # (campaign, provider) whose circuit breaker to judge
    for index, (inbound_id, verdict) in enumerate(claimed):
        if verdict.report is not None:
            dmarc.store(conn, inbound_id, verdict.report)
            continue
        found = verdict.attribution
        if found is not None and verdict.outcome == "deferred":
            if people.get(found.subscriber_id) is not None:
                judged[(found.campaign_id, providers.provider(people[found.subscriber_id]))] = None
            continue
        if found is None or verdict.state not in ("processed", "review"):
            continue
        email = people.get(found.subscriber_id)
        if verdict.outcome == "unsubscribe":
            if email is not None:
                mailto_unsubscribe(conn, found.subscriber_id, found.campaign_id)
            continue
        address = email if email is not None else (verdict.recipient.address if verdict.recipient else "")
        report = _Report(index, verdict, inbound_id, found.subscriber_id if email is not None else None,
                         address, providers.provider(address))
        if verdict.outcome == "bounce" and verdict.recipient is not None:
            bounced.append(report)
        elif verdict.outcome == "complaint" and verdict.state == "processed":
            complained.append(report)
    now = utcnow()
    _bounce_reasons(conn, settings, bounced, now)
    bounce_ids = _insert(conn, _INSERT_BOUNCES, [_bounce_row(
        r.inbound_id, r.verdict.source, r.subscriber_id, r.verdict.attribution.campaign_id, r.email,
        r.provider, r.verdict.recipient, r.verdict.bounce_class, r.verdict.rule,
        r.verdict.rules_version, now) for r in bounced])
    complaint_ids = _insert(conn, _INSERT_COMPLAINTS, [{
        "inbound_id": r.inbound_id, "at": now, "source": r.verdict.source,
        "subscriber_id": r.subscriber_id, "campaign_id": r.verdict.attribution.campaign_id,
        "email": r.email[:320], "provider": r.provider,
        "feedback_type": r.verdict.feedback_type[:16], "reporter": r.verdict.reporter[:200]}
        for r in complained])
    for report in complained:
        report.reason = _complaint_reason(report.verdict.feedback_type, report.verdict.reporter)
    suppressing = sorted((r for r in bounced + complained if r.subscriber_id is not None and r.email
                          and r.reason), key=lambda r: r.index)
    audience.suppress_addresses(conn, ACTOR, [
        (r.email, r.reason, "complaint" if r.verdict.outcome == "complaint" else "bounce") for r in suppressing])
    mark_suppressed(conn, [bounce_id for bounce_id, r in zip(bounce_ids, bounced, strict=True)
                           if r.reason and r.subscriber_id is not None and r.email])
    _raise_alerts(conn, [r for r in bounced if r.subscriber_id is not None and r.email])
    events.EMAIL_BOUNCED.emit_many(conn, [
        {"bounce_id": bounce_id, "subscriber_id": r.subscriber_id,
         "campaign_id": r.verdict.attribution.campaign_id, "email": r.email,
         "bounce_class": r.verdict.bounce_class, "status": r.verdict.recipient.status,
         "provider": r.provider, "suppressed": bool(r.reason)}
        for bounce_id, r in zip(bounce_ids, bounced, strict=True) if r.subscriber_id is not None and r.email])
    reported = [(complaint_id, r) for complaint_id, r in zip(complaint_ids, complained, strict=True)
                if r.subscriber_id is not None and r.email]
    events.EMAIL_COMPLAINED.emit_many(conn, [
        {"complaint_id": complaint_id, "subscriber_id": r.subscriber_id,
         "campaign_id": r.verdict.attribution.campaign_id, "email": r.email,
         "feedback_type": r.verdict.feedback_type, "provider": r.provider}
        for complaint_id, r in reported])
    for campaign_id, provider in dict.fromkeys((r.verdict.attribution.campaign_id, r.provider)
                                               for _, r in reported):
        monitor.check_complaints(conn, settings, campaign_id, provider)
    # After the alerts and complaint checks, as one by one: a block, a complaint, a deferral.
    judged.update(dict.fromkeys((r.verdict.attribution.campaign_id, r.provider) for r in bounced
                                if r.subscriber_id is not None and r.email
                                and r.verdict.bounce_class in ALERT_CLASSES))
    judged.update(dict.fromkeys((r.verdict.attribution.campaign_id, r.provider) for _, r in reported))
    for campaign_id, provider in judged:
        monitor.check_breaker(conn, settings, campaign_id, provider)


def _insert(conn: Connection, statement, rows: list[dict]) -> list[int]:
    return list(conn.execute(statement, rows).scalars()) if rows else []


def _bounce_reasons(conn: Connection, settings, bounced: list[_Report], now: datetime) -> None:
    """Sets `reason` of each bounce that suppresses its address, as `_suppression_reason`
    would one after the other: the soft ones counted from what is stored plus the batch's
    earlier ones (before the batch's rows are inserted)."""
    soft = [r for r in bounced if r.subscriber_id is not None and r.email and r.verdict.bounce_class == "soft"]
    for report in bounced:
        if report.verdict.bounce_class == "hard":
            report.reason = hard_reason(report.verdict.recipient)
    if not soft:
        return
    ids = {r.subscriber_id for r in soft}
    floor = now - timedelta(days=settings["inbound.soft_bounce_days"])
    events_ = tracking_events.c
    since = {sid: floor for sid in ids}
    for sid, engaged in conn.execute(select(events_.subscriber_id, func.max(events_.at)).where(
            events_.subscriber_id.in_(ids), events_.kind.in_((OPEN, CLICK)),
            events_.machine.is_(False)).group_by(events_.subscriber_id)):
        if engaged is not None and engaged > floor:
            since[sid] = engaged
    counts = dict.fromkeys(ids, 0)
    sends: dict[int, set] = {sid: set() for sid in ids}
    for sid, campaign_id, at in conn.execute(select(bounces.c.subscriber_id, bounces.c.campaign_id, bounces.c.at)
                                             .where(bounces.c.subscriber_id.in_(ids),
                                                    bounces.c.bounce_class == "soft", bounces.c.at > floor)):
        if at > since[sid]:
            counts[sid] += 1
            if campaign_id is not None:
                sends[sid].add(campaign_id)
    limit = settings["inbound.soft_bounce_limit"]
    for report in soft:
        sid = report.subscriber_id
        counts[sid] += 1
        if report.verdict.attribution.campaign_id is not None:
            sends[sid].add(report.verdict.attribution.campaign_id)
        if counts[sid] >= limit and len(sends[sid]) >= 2:
            report.reason = _soft_reason(settings, counts[sid], report.verdict.recipient)


def _raise_alerts(conn: Connection, bounced: list[_Report]) -> None:
    """One deliverability alert per (class, campaign, provider) of the batch's policy and
    content blocks, counted as many times as it recurred (the last one's text)."""
    found: dict[tuple, list] = {}
    for r in bounced:
        if r.verdict.bounce_class in ALERT_CLASSES:
            key = (r.verdict.bounce_class, r.verdict.attribution.campaign_id, r.provider)
            entry = found.setdefault(key, [0, ""])
            entry[0] += 1
            entry[1] = f"{r.verdict.recipient.status} {r.verdict.recipient.diagnostic}".strip()[:500]
    for (kind, campaign_id, provider), (times, detail) in found.items():
        monitor.raise_alert(conn, kind, "warning", campaign_id, provider, detail, times=times)
