"""The global suppression list: addresses and whole domains that never receive mail."""
from __future__ import annotations

import re

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from altkraft_onprem import events
from altkraft_onprem.access.models import Actor, system_actor
from altkraft_onprem.access.service import record, record_many
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import NotFound, ServiceError

from .activity import log_activities, log_activity
from .importer.archives import Limits
from .importer.sources import open_tables
from .models import FieldError, normalise_domain, normalise_email, subscribers, suppressions

SOURCES = ("manual", "paste", "file", "api", "unsubscribe", "bounce", "complaint", "import")
# The state a subscriber takes when suppressed for a reason that has its own state.
_STATE_FOR = {"bounce": "bounced", "complaint": "complained"}


def suppress(conn: Connection, actor: Actor, email: str | None = None, domain: str | None = None,
             reason: str = "", source: str = "manual") -> int:
    """Adds one address or domain (idempotent: an existing entry is returned unchanged, except
    that a bounce or complaint takes over an address entry of a lesser source) and marks
    matching subscribers suppressed (bounced / complained for those sources, which is also
    the activity kind logged)."""
    if (email is None) == (domain is None):
        raise ServiceError("give either an email or a domain", "email")
    if source not in SOURCES:
        raise ServiceError("source must be one of %(sources)s", "source", sources=', '.join(SOURCES))
    try:
        value = normalise_email(email) if email is not None else normalise_domain(domain)
    except FieldError as exc:
        raise ServiceError.like(exc) from None
    column = suppressions.c.email if email is not None else suppressions.c.domain
    existing = conn.execute(select(suppressions.c.id, suppressions.c.source)
                            .where(column == value)).first()
    if existing is not None:
        if source in _STATE_FOR and existing.source not in _STATE_FOR and email is not None:
            _harden(conn, actor, existing.id, value, reason, source)
        return existing.id
    entry_id = conn.execute(insert(suppressions).values(
        email=value if email is not None else None, domain=value if domain is not None else None,
        reason=(reason or "")[:200], source=source, created_at=utcnow(),
        created_by=actor.label[:320]).returning(suppressions.c.id)).scalar_one()
    events.SUPPRESSION_ADDED.emit(conn, entry_id=entry_id, email=value if email is not None else None,
                                  domain=value if domain is not None else None, source=source)
    state = _STATE_FOR.get(source, "suppressed")
    target = subscribers.c.email == value if email is not None else subscribers.c.email_domain == value
    affected = conn.execute(select(subscribers.c.id).where(target, subscribers.c.state == "active")
                            ).scalars().all()
    if affected:
        conn.execute(update(subscribers).where(subscribers.c.id.in_(affected))
                     .values(state=state, updated_at=utcnow()))
        if len(affected) <= 1000:
            for subscriber_id in affected:
                log_activity(conn, subscriber_id, state, reason=reason, source=source)
    record(conn, actor, "suppression.add", "suppression", entry_id, email=email and value,
           domain=domain and value, reason=reason, source=source)
    return entry_id


def suppress_addresses(conn: Connection, actor: Actor, entries: list[tuple[str, str, str]]) -> None:
    """`suppress(email=…)` of many addresses, in order: (email, reason, source) each; the
    same entries, states, activity, events and audit in a few statements (a batch of bounces
    and complaints). An address that comes again within the batch is suppressed again one by
    one, as a second call would be."""
    first: dict[str, tuple[str, str]] = {}
    again: list[tuple[str, str, str]] = []
    for email, reason, source in entries:
        if source not in SOURCES:
            raise ServiceError("source must be one of %(sources)s", "source", sources=', '.join(SOURCES))
        try:
            value = normalise_email(email)
        except FieldError as exc:
            raise ServiceError.like(exc) from None
        if value in first:
            again.append((value, reason, source))
        else:
            first[value] = (reason, source)
    if not first:
        return
    existing = {row.email: row for row in conn.execute(select(
        suppressions.c.id, suppressions.c.email, suppressions.c.source).where(
        suppressions.c.email.in_(list(first))))}
    for value, row in existing.items():
        reason, source = first[value]
        if source in _STATE_FOR and row.source not in _STATE_FOR:
            _harden(conn, actor, row.id, value, reason, source)
    new = [value for value in first if value not in existing]
    if new:
        now = utcnow()
        ids = conn.execute(insert(suppressions).returning(suppressions.c.id, sort_by_parameter_order=True), [
            {"email": value, "domain": None, "reason": first[value][0][:200], "source": first[value][1],
             "created_at": now, "created_by": actor.label[:320]} for value in new]).scalars().all()
        events.SUPPRESSION_ADDED.emit_many(conn, [
            {"entry_id": entry_id, "email": value, "domain": None, "source": first[value][1]}
            for entry_id, value in zip(ids, new, strict=True)])
        people = conn.execute(select(subscribers.c.id, subscribers.c.email).where(
            subscribers.c.email.in_(new), subscribers.c.state == "active")).all()
        by_state: dict[str, list[tuple[int, dict]]] = {}
        for subscriber_id, value in people:
            reason, source = first[value]
            by_state.setdefault(_STATE_FOR.get(source, "suppressed"), []).append(
                (subscriber_id, {"reason": reason, "source": source}))
        for state, affected in by_state.items():
            conn.execute(update(subscribers).where(subscribers.c.id.in_([a[0] for a in affected]))
                         .values(state=state, updated_at=now))
            log_activities(conn, state, affected)
        record_many(conn, actor, "suppression.add", "suppression", [
            (entry_id, {"email": value, "domain": None, "reason": first[value][0], "source": first[value][1]})
            for entry_id, value in zip(ids, new, strict=True)])
    for value, reason, source in again:
        suppress(conn, actor, email=value, reason=reason, source=source)


def _harden(conn: Connection, actor: Actor, entry_id: int, email: str, reason: str,
            source: str) -> None:
    """A bounce or complaint about an address already suppressed for a lesser reason (the
    person unsubscribed, an admin added it): the entry and the person's state say so now."""
    conn.execute(update(suppressions).where(suppressions.c.id == entry_id)
                 .values(source=source, reason=(reason or "")[:200]))
    state = _STATE_FOR[source]
    affected = conn.execute(select(subscribers.c.id).where(
        subscribers.c.email == email, subscribers.c.state.in_(("active", "suppressed")))).scalars().all()
    for subscriber_id in affected:
        conn.execute(update(subscribers).where(subscribers.c.id == subscriber_id)
                     .values(state=state, updated_at=utcnow()))
        log_activity(conn, subscriber_id, state, reason=reason, source=source)
    record(conn, actor, "suppression.update", "suppression", entry_id, email=email,
           reason=reason, source=source)


def suppress_many(conn: Connection, actor: Actor, text, reason: str = "",
                  source: str = "paste") -> dict:
    """Pasted text (one address or domain per line/comma/semicolon) or an iterable of values;
    a bare domain or @domain is a domain entry.
    Returns {"added": n, "invalid": [(value, reason), …]}."""
    tokens = re.split(r"[\s,;]+", text or "") if isinstance(text, str) else text
    added, invalid = 0, []
    for token in tokens:
        token = (token or "").strip().strip('"\'')
        if not token:
            continue
        try:
            if "@" in token.lstrip("@"):
                suppress(conn, actor, email=token, reason=reason, source=source)
            else:
                suppress(conn, actor, domain=token, reason=reason, source=source)
            added += 1
        except ServiceError as exc:
            invalid.append((token, exc.message))
    return {"added": added, "invalid": invalid}


_COLUMN_NAMES = {"email", "e-mail", "mail", "address", "domain", "почта", "адрес", "домен",
                 "электронная почта"}


def file_values(path, filename: str, settings) -> list[str]:
    """Addresses/domains from a file in any import format (CSV/TXT in any detected encoding,
    XLS, XLSX, ZIP or TAR.GZ of those, read with the importer's limits): the column headed
    email/domain when there is one, else the first column."""
    values: list[str] = []
    for table in open_tables(path, filename, Limits.from_settings(settings)):
        column = 0
        if table.header:
            names = [h.strip().lower() for h in table.header]
            column = next((i for i, h in enumerate(names) if h in _COLUMN_NAMES), 0)
        for _line, cells in table.rows:
            if column < len(cells) and cells[column].strip():
                values.append(cells[column].strip())
            if len(values) > 1_000_000:
                raise ServiceError("at most 1,000,000 entries per file", "file")
    return values


def remove(conn: Connection, actor: Actor, entry_id: int) -> None:
    """Deletes an entry (audited); subscribers it suppressed become active again unless another
    entry still covers them. Bounced/complained people keep their state."""
    entry = get_entry(conn, entry_id)
    conn.execute(delete(suppressions).where(suppressions.c.id == entry_id))
    events.SUPPRESSION_REMOVED.emit(conn, entry_id=entry_id, email=entry["email"],
                                    domain=entry["domain"])
    target = (subscribers.c.email == entry["email"]) if entry["email"] else (
        subscribers.c.email_domain == entry["domain"])
    still = or_(select(suppressions.c.id).where(suppressions.c.email == subscribers.c.email).exists(),
                select(suppressions.c.id).where(suppressions.c.domain == subscribers.c.email_domain)
                .exists())
    conn.execute(update(subscribers).where(target, subscribers.c.state == "suppressed", ~still)
                 .values(state="active", updated_at=utcnow()))
    record(conn, actor, "suppression.remove", "suppression", entry_id, email=entry["email"],
           domain=entry["domain"], reason=entry["reason"], source=entry["source"])


def unsuppress_address(conn: Connection, actor: Actor, email: str, reason: str = "") -> bool:
    """A person decided an address was suppressed wrongly (a bounce misread, a complaint
    withdrawn): its entry goes (audited) and subscribers bounced or complained with that
    address are active again. False when no entry named the address."""
    value = normalise_email(email)
    entry = conn.execute(select(suppressions.c.id).where(suppressions.c.email == value)).scalar()
    if entry is None:
        return False
    remove(conn, actor, entry)
    domain_entry = select(suppressions.c.id).where(suppressions.c.domain == value.rpartition("@")[2])
    still = "suppressed" if conn.execute(domain_entry).first() is not None else "active"
    conn.execute(update(subscribers).where(
        subscribers.c.email == value, subscribers.c.state.in_(tuple(_STATE_FOR.values())))
        .values(state=still, updated_at=utcnow()))
    record(conn, actor, "suppression.unsuppress", "suppression", entry, email=value, reason=reason)
    return True


def get_entry(conn: Connection, entry_id: int) -> dict:
    row = conn.execute(select(suppressions).where(suppressions.c.id == entry_id)).first()
    if row is None:
        raise NotFound("no such suppression entry")
    return dict(row._mapping)


def list_entries(conn: Connection, *, search: str = "", limit: int = 100, offset: int = 0
                 ) -> tuple[list[dict], int]:
    where = []
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(or_(suppressions.c.email.ilike(pattern, escape="\\"),
                         suppressions.c.domain.ilike(pattern, escape="\\")))
    total = conn.execute(select(func.count()).select_from(suppressions).where(*where)).scalar_one()
    rows = conn.execute(select(suppressions).where(*where).order_by(suppressions.c.id.desc())
                        .limit(limit).offset(offset))
    return [dict(r._mapping) for r in rows], total


def not_suppressed():
    """WHERE: the subscriber's address and domain are on no suppression entry (two NOT EXISTS,
    which Postgres turns into anti-joins; NOT (a OR b) would run a subplan per row)."""
    return and_(
        ~select(suppressions.c.id).where(suppressions.c.email == subscribers.c.email).exists(),
        ~select(suppressions.c.id).where(suppressions.c.domain == subscribers.c.email_domain).exists())


def only_self_unsubscribed(conn: Connection, email: str) -> bool:
    """True when the address is suppressed solely because its owner unsubscribed from
    everything (no domain entry, no bounce or complaint): they may opt in again themselves."""
    value = normalise_email(email)
    entries = conn.execute(select(suppressions.c.source).where(or_(
        suppressions.c.email == value, suppressions.c.domain == value.rpartition("@")[2]))).all()
    return bool(entries) and all(e.source == "unsubscribe" for e in entries)


def lift_self_unsubscribe(conn: Connection, email: str) -> None:
    """The owner opted in again (confirmed link, preference center): their own
    unsubscribe-from-everything entry goes (audited as the system)."""
    value = normalise_email(email)
    entry = conn.execute(select(suppressions.c.id).where(
        suppressions.c.email == value, suppressions.c.source == "unsubscribe")).scalar()
    if entry is not None:
        remove(conn, system_actor("opt-in again"), entry)


def has_address_entry(conn: Connection, email: str) -> bool:
    """The address itself is on the list (a domain entry does not count)."""
    return conn.execute(select(suppressions.c.id).where(
        suppressions.c.email == normalise_email(email))).first() is not None


def is_suppressed(conn: Connection, email: str) -> bool:
    try:
        value = normalise_email(email)
    except FieldError:
        return False
    domain = value.rpartition("@")[2]
    return conn.execute(select(suppressions.c.id).where(
        or_(suppressions.c.email == value, suppressions.c.domain == domain))).first() is not None
