"""Inbound mail services: run the pipeline over stored messages and apply each verdict —
bounces and complaints recorded, addresses suppressed, mailto unsubscribes carried out, the
domain events emitted — each message in its own savepoint, guarded by its state so that two
workers never apply one message twice.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from flask import has_app_context
from sqlalchemy import Connection, bindparam, distinct, func, insert, select, update

from altkraft_onprem import config, db, events
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns.models import campaigns, unsubscribe_list
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery import providers
from altkraft_onprem.errors import NotFound
from altkraft_onprem.tracking.models import CLICK, OPEN, tracking_events

from . import dmarc, monitor, rules
from .addresses import Recogniser
from .intake import raw_message
from .models import bounces, complaints, inbound_messages
from .parse import Recipient, status_code
from .pipeline import Verdict, judge

log = logging.getLogger(__name__)
ACTOR = system_actor("inbound mail")
BATCH = 200


def process_pending(engine, settings, limit: int = BATCH, ids: list[int] | None = None) -> list[dict]:
    """Judges up to `limit` stored messages waiting in the intake (or the given ones) and
    applies the verdicts; returns [{id, state, outcome}] of those this call applied."""
    recogniser = Recogniser(settings)
    query = select(inbound_messages.c.id, inbound_messages.c.rcpt, inbound_messages.c.raw).where(
        inbound_messages.c.state == "new").order_by(inbound_messages.c.id).limit(limit)
    if ids is not None:
        query = query.where(inbound_messages.c.id.in_(ids))
    judged = []
    with db.read(engine) as conn:
        for row in conn.execute(query).all():
            try:
                verdict = judge(conn, settings, recogniser, row.rcpt, raw_message(row.raw))
            except Exception as exc:  # noqa: BLE001 - kept for a person; never lost
                log.exception("inbound: message %s could not be judged", row.id)
                verdict = Verdict("failed", "none", notes=[f"internal error: {exc.__class__.__name__}"])
            judged.append((row.id, verdict))
    if not judged:
        return []
    applied = []
    with db.write(engine) as conn:
        for inbound_id, verdict in judged:
            if apply(conn, settings, inbound_id, verdict):
                applied.append({"id": inbound_id, "state": verdict.state, "outcome": verdict.outcome})
    return applied


def apply(conn: Connection, settings, inbound_id: int, verdict: Verdict) -> bool:
    """Applies one verdict unless another worker already did (False then)."""
    savepoint = conn.begin_nested()
    try:
        if not _claim(conn, inbound_id, verdict):
            savepoint.rollback()
            return False
        _effects(conn, settings, inbound_id, verdict)
        savepoint.commit()
        return True
    except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
        savepoint.rollback()
        log.exception("inbound: message %s could not be applied", inbound_id)
        failed = Verdict("failed", "none", verdict.subject,
                         notes=[*verdict.notes, f"internal error: {exc.__class__.__name__}"])
        return _claim(conn, inbound_id, failed)


# Built once: the pipeline runs these per message, and building a statement costs more than
# running it.
_CLAIM = update(inbound_messages).where(inbound_messages.c.id == bindparam("claim_id"),
                                        inbound_messages.c.state == "new")
_PERSON = select(subscribers.c.id, subscribers.c.email).where(subscribers.c.id == bindparam("sid"))
_INSERT_BOUNCE = insert(bounces).returning(bounces.c.id)
_INSERT_COMPLAINT = insert(complaints).returning(complaints.c.id)
_MARK_SUPPRESSED = update(bounces).where(bounces.c.id == bindparam("bounce_id")).values(suppressed=True)
_LAST_ENGAGED = select(func.max(tracking_events.c.at)).where(
    tracking_events.c.subscriber_id == bindparam("sid"), tracking_events.c.kind.in_((OPEN, CLICK)),
    tracking_events.c.machine.is_(False))
_SOFT_SINCE = select(func.count(), func.count(distinct(bounces.c.campaign_id))).where(
    bounces.c.subscriber_id == bindparam("sid"), bounces.c.bounce_class == "soft",
    bounces.c.at > bindparam("since"))


def _claim(conn: Connection, inbound_id: int, verdict: Verdict) -> bool:
    found = verdict.attribution
    result = conn.execute(_CLAIM, {
        "claim_id": inbound_id, "state": verdict.state, "outcome": verdict.outcome,
        "subject": verdict.subject[:200], "campaign_id": found.campaign_id if found else None,
        "subscriber_id": found.subscriber_id if found else None,
        "detail": json.dumps(verdict.detail(), ensure_ascii=False, default=str),
        "processed_at": utcnow()})
    return result.rowcount == 1


def _effects(conn: Connection, settings, inbound_id: int, verdict: Verdict) -> None:
    if verdict.report is not None:
        dmarc.store(conn, inbound_id, verdict.report)
        return
    found = verdict.attribution
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


def relay_rejected(conn: Connection, *, campaign_id: int, subscriber_id: int, email: str | None,
                   code: int, reply: str) -> None:
    """The relay refused a campaign message with a 5xx while it was sent (email.rejected):
    recorded and classified like a bounce that came back by mail — for an outside address
    (a transactional send, subscriber 0) too, so a hard bounce suppresses it."""
    if subscriber_id:
        email = conn.execute(select(subscribers.c.email).where(
            subscribers.c.id == subscriber_id)).scalar()
    if email is None:
        return
    diagnostic = f"{code} {reply}"[:2000]
    status = status_code(reply)
    bounce_class, rule = rules.classify(status, diagnostic)
    recipient = Recipient(address=email, status=status, diagnostic=diagnostic)
    bounce_id = record_bounce(conn, _settings(), inbound_id=None, source="relay",
                              subscriber_id=subscriber_id or None, campaign_id=campaign_id,
                              email=email, bounce_class=bounce_class, rule=rule,
                              rules_version=rules.CURRENT_VERSION, recipient=recipient)
    if not subscriber_id and bounce_class == "hard":
        # An outside address has no soft-bounce history: a hard bounce suppresses it at once.
        reason = _suppression_reason(conn, _settings(), 0, bounce_class, recipient, utcnow())
        audience.suppress(conn, ACTOR, email=email, reason=reason, source="bounce")
        conn.execute(_MARK_SUPPRESSED, {"bounce_id": bounce_id})


def _settings():
    """The settings of the app running this job or request; the defaults in a process that
    has none (a campaign run driven directly, as the tests and benchmarks do)."""
    return current_settings() if has_app_context() else config.load(environ={})


def mailto_unsubscribe(conn: Connection, subscriber_id: int, campaign_id: int | None) -> list[int]:
    """A mail to the message's List-Unsubscribe mailto address: the same unsubscribe as the
    one-click POST of that message (its campaign's only list, else everything)."""
    list_ids = conn.execute(select(campaigns.c.list_ids).where(
        campaigns.c.id == campaign_id)).scalar() if campaign_id else None
    return audience.unsubscribe(conn, subscriber_id, unsubscribe_list(list_ids), campaign_id,
                                form="mailto")


def record_bounce(conn: Connection, settings, *, inbound_id: int | None, source: str,
                  subscriber_id: int | None, campaign_id: int | None, email: str, recipient,
                  bounce_class: str, rule: str, rules_version: int) -> int:
    """Records a classified bounce, suppresses the address when its class (or the soft-bounce
    count) says so, and emits email.bounced. Returns the bounce id."""
    now = utcnow()
    provider = providers.provider(email)
    bounce_id = conn.execute(_INSERT_BOUNCE, {
        "inbound_id": inbound_id, "at": now, "source": source, "subscriber_id": subscriber_id,
        "campaign_id": campaign_id, "email": email[:320], "provider": provider,
        "bounce_class": bounce_class, "rule": rule, "rules_version": rules_version,
        "status": recipient.status[:16], "action": recipient.action[:16],
        "diagnostic": recipient.diagnostic[:2000], "remote_mta": recipient.remote_mta[:255],
        "suppressed": False}).scalar_one()
    suppressed = False
    if subscriber_id is not None and email:
        reason = _suppression_reason(conn, settings, subscriber_id, bounce_class, recipient, now)
        if reason:
            audience.suppress(conn, ACTOR, email=email, reason=reason, source="bounce")
            conn.execute(_MARK_SUPPRESSED, {"bounce_id": bounce_id})
            suppressed = True
        if bounce_class in ("policy", "content"):
            monitor.raise_alert(conn, bounce_class, "warning", campaign_id, provider,
                                f"{recipient.status} {recipient.diagnostic}".strip()[:500])
        events.EMAIL_BOUNCED.emit(conn, bounce_id=bounce_id, subscriber_id=subscriber_id,
                                  campaign_id=campaign_id, email=email, bounce_class=bounce_class,
                                  status=recipient.status, provider=provider, suppressed=suppressed)
    return bounce_id


def _suppression_reason(conn: Connection, settings, subscriber_id: int, bounce_class: str,
                        recipient, now: datetime) -> str:
    """Why this bounce suppresses the address ("" when it does not): a hard bounce at once; a
    soft one when it is the inbound.soft_bounce_limit-th since the last open or click within
    inbound.soft_bounce_days, over at least two campaigns."""
    code = f" {recipient.status}" if recipient.status else ""
    if bounce_class == "hard":
        return f"hard bounce{code}: {recipient.diagnostic}"[:200]
    if bounce_class != "soft":
        return ""
    since = now - timedelta(days=settings["inbound.soft_bounce_days"])
    engaged = conn.execute(_LAST_ENGAGED, {"sid": subscriber_id}).scalar()
    if engaged is not None and engaged > since:
        since = engaged
    count, sends = conn.execute(_SOFT_SINCE, {"sid": subscriber_id, "since": since}).one()
    limit = settings["inbound.soft_bounce_limit"]
    if count >= limit and sends >= 2:
        return f"{count} soft bounces in {settings['inbound.soft_bounce_days']} days{code}"[:200]
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
                          reason=f"spam complaint ({feedback_type})"
                          + (f" through {reporter}" if reporter else ""))
        events.EMAIL_COMPLAINED.emit(conn, complaint_id=complaint_id, subscriber_id=subscriber_id,
                                     campaign_id=campaign_id, email=email,
                                     feedback_type=feedback_type, provider=provider)
        monitor.check_complaints(conn, settings, campaign_id, provider)
    return complaint_id


def get_message(conn: Connection, inbound_id: int) -> dict:
    row = conn.execute(select(inbound_messages).where(inbound_messages.c.id == inbound_id)).first()
    if row is None:
        raise NotFound("inbound message %(inbound_id)s does not exist", inbound_id=inbound_id)
    found = dict(row._mapping)
    found["raw"] = raw_message(found["raw"])
    found["detail"] = json.loads(found["detail"] or "{}")
    return found


def waiting(engine) -> bool:
    """Whether any stored message waits for the pipeline."""
    with db.read(engine) as conn:
        return conn.execute(select(inbound_messages.c.id).where(
            inbound_messages.c.state == "new").limit(1)).first() is not None


def outcome(conn: Connection, inbound_id: int) -> dict:
    """What became of one stored message (for `altkraft inbound replay` and the API)."""
    found = get_message(conn, inbound_id)
    out = {key: found[key] for key in ("state", "outcome", "rcpt", "subject", "campaign_id",
                                       "subscriber_id")}
    out.update(id=inbound_id, **{k: v for k, v in found["detail"].items() if k != "recipient"})
    recipient = found["detail"].get("recipient")
    if recipient:
        out.update(status=recipient.get("status", ""), diagnostic=recipient.get("diagnostic", ""))
    bounce = conn.execute(select(bounces.c.id, bounces.c.suppressed).where(
        bounces.c.inbound_id == inbound_id)).first()
    if bounce is not None:
        out.update(bounce_id=bounce.id, suppressed=bool(bounce.suppressed))
    complaint = conn.execute(select(complaints.c.id).where(complaints.c.inbound_id == inbound_id)).scalar()
    if complaint is not None:
        out.update(complaint_id=complaint, suppressed=True)
    return out
