"""The delivery ledger: one row per (campaign, subscriber); what makes a resend impossible.

A sender claims a batch with a lease (`claim`), hands the rows to SMTP strictly in id order
and has each reply safe before the next message's DATA ends — a relay keeps nothing whose
final dot it never received. Safe means committed (`record`, or `record_sent` for a group of
senders) or in the sender's journal (campaigns/journal.py, replayed after a crash before
`recover` runs). So of a dead sender's rows still leased, only the first can have reached
the relay: `recover` marks it in-doubt and puts the others back in the queue.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import (
    Connection,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from altkraft_onprem import events
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.holders import BOOT, HOST, owner_dead, owner_name  # noqa: F401 (re-exported)

from .models import campaigns, deliveries

# Records a sender may have journaled but not yet seen committed when it sends a final dot
# (sending/fanout.py waits above it). A dead sender whose journal cannot be trusted (another
# host's, or written before this host rebooted: the page cache is gone) may have had this
# many replies in flight besides the message at the relay.
UNCOMMITTED_WINDOW = 32


def journal_trusted(owner: str) -> bool:
    """Whether everything a dead holder journaled is still there to replay: it ran on this
    host, since its last boot, and is gone."""
    tag = owner.rsplit(":", 1)[-1].partition(".")[0]
    return tag == BOOT and owner_dead(owner)


def materialise(conn: Connection, campaign_id: int, audience, zone=None, due=None,
                hold: str | None = None) -> int:
    """Inserts a queued row for every subscriber id the audience SELECT yields (once). A
    local-time campaign (campaigns/localtime.py) gives `zone`, the SQL expression of each
    row's zone index, and `due(zone column)`, the moment that zone's rows become due: its
    rows are inserted in that order (a claim by id meets the due rows first). `hold`: the
    rows are held for that reason instead (a warm-up; `release_rows` queues them)."""
    if zone is not None:
        audience = audience.add_columns(zone.label("zone"))
    subquery = audience.subquery()
    columns = ["campaign_id", "subscriber_id", "variant", "state", "attempts"]
    values = [literal(campaign_id), subquery.c.id, literal(0),
              literal("held" if hold else "queued"), literal(0)]
    if hold:
        columns.append("hold")
        values.append(literal(hold))
    if zone is not None:
        columns += ["zone", "next_attempt_at"]
        values += [subquery.c.zone, due(subquery.c.zone)]
    source = select(*values)
    if zone is not None:
        source = source.order_by(subquery.c.zone, subquery.c.id)
    has_rows = conn.execute(select(deliveries.c.id).where(
        deliveries.c.campaign_id == campaign_id).limit(1)).first() is not None
    if has_rows:
        # Only when needed: on a fresh campaign Postgres may plan this anti-join as a scan of
        # the table the INSERT is filling, once per row (minutes for 100,000 subscribers).
        already = select(deliveries.c.subscriber_id).where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.subscriber_id == subquery.c.id).exists()
        source = source.where(~already)
    conn.execute(insert(deliveries).from_select(columns, source))
    total = conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.campaign_id == campaign_id)).scalar_one()
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                 .values(ledger_built=True, total=total))
    return total


def materialise_split(conn: Connection, campaign_id: int, audience, variants: int,
                      test_size: int) -> int:
    """Like `materialise`, for a split test: `test_size` subscribers in random order are
    queued with variants 1..N in turn (an even, random split); everyone else is `held` —
    in the ledger and counted, but never claimed until `release_held` names the winner."""
    subquery = audience.subquery()
    ranked = select(subquery.c.id, func.row_number().over(order_by=func.random()).label("rank"))
    if conn.execute(select(deliveries.c.id).where(
            deliveries.c.campaign_id == campaign_id).limit(1)).first() is not None:
        # Only when needed, as in `materialise` (Postgres may plan the anti-join badly).
        ranked = ranked.where(~select(deliveries.c.subscriber_id).where(
            deliveries.c.campaign_id == campaign_id,
            deliveries.c.subscriber_id == subquery.c.id).exists())
    ranked = ranked.subquery()
    in_test = ranked.c.rank <= test_size
    # Inserted in subscriber order, as `materialise` does: in random order every row would
    # land somewhere else in the (campaign, subscriber) index, about ten times the work.
    source = select(literal(campaign_id), ranked.c.id,
                    case((in_test, 1 + (ranked.c.rank - 1) % variants), else_=0),
                    case((in_test, "queued"), else_="held"), literal(0), in_test
                    ).order_by(ranked.c.id)
    conn.execute(insert(deliveries).from_select(
        ["campaign_id", "subscriber_id", "variant", "state", "attempts", "test_group"], source))
    total = conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.campaign_id == campaign_id)).scalar_one()
    conn.execute(update(campaigns).where(campaigns.c.id == campaign_id)
                 .values(ledger_built=True, total=total))
    return total


def release_held(conn: Connection, campaign_id: int, variant: int) -> int:
    """The split test's winner goes to the held rows: queued again, with its variant — or,
    in a campaign held for a warm-up, held for the warm-up from now on."""
    gated = conn.execute(select(deliveries.c.id).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.hold == WARMUP_HOLD).limit(1)
    ).first() is not None
    values = {"state": "held", "hold": WARMUP_HOLD} if gated else {"state": "queued"}
    return conn.execute(update(deliveries).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "held",
        deliveries.c.hold.is_(None)).values(variant=variant, **values)).rowcount


# Rows held for a warm-up (deliverability/warmup.py releases them as its quotas allow). A
# released row keeps the mark: the campaign's later rows (a split test's winner) are gated too.
WARMUP_HOLD = "warmup"


def hold_queued(conn: Connection, campaign_id: int, hold: str) -> int:
    """Queued rows held for `hold` (a split test's test portion in a warming campaign)."""
    return conn.execute(update(deliveries).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "queued").values(
        state="held", hold=hold)).rowcount


def has_hold(conn: Connection, campaign_id: int, hold: str) -> bool:
    return conn.execute(select(deliveries.c.id).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "held",
        deliveries.c.hold == hold).limit(1)).first() is not None


def count_held(conn: Connection, campaign_id: int, hold: str) -> int:
    return conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "held",
        deliveries.c.hold == hold)).scalar_one()


def release_rows(conn: Connection, row_ids: list[int], hold: str) -> int:
    """These rows, if still held for `hold`, queued for the senders."""
    if not row_ids:
        return 0
    return conn.execute(update(deliveries).where(
        deliveries.c.id.in_(row_ids), deliveries.c.state == "held",
        deliveries.c.hold == hold).values(state="queued")).rowcount


def release_hold(conn: Connection, campaign_id: int, hold: str) -> int:
    """Every row of the campaign held for `hold`, queued (the reason is gone)."""
    return conn.execute(update(deliveries).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "held",
        deliveries.c.hold == hold).values(state="queued")).rowcount


def row_variants(conn: Connection, row_ids: list[int]) -> dict[int, int]:
    """{row id: variant} of claimed rows (split tests only; a plain campaign is all 0)."""
    return dict(conn.execute(select(deliveries.c.id, deliveries.c.variant).where(
        deliveries.c.id.in_(row_ids))).all())


def claim(conn: Connection, campaign_id: int, owner: str, size: int, lease_seconds: int,
          now: datetime | None = None, skip_zones: list[int] | None = None) -> list[tuple[int, int]]:
    """Leases up to `size` due queued rows to `owner`; [(row id, subscriber id)] by id.
    `skip_zones`: a local-time campaign's zones in their quiet hours (left queued)."""
    now = now or utcnow()
    due = select(deliveries.c.id).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "queued",
        or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
    ).order_by(deliveries.c.id).limit(size)
    if skip_zones:
        due = due.where(or_(deliveries.c.zone.is_(None), deliveries.c.zone.not_in(skip_zones)))
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(update(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.state == "queued")
                 .values(state="leased", lease_owner=owner,
                         lease_until=now + timedelta(seconds=lease_seconds)))
    rows = conn.execute(select(deliveries.c.id, deliveries.c.subscriber_id).where(
        deliveries.c.id.in_(ids), deliveries.c.lease_owner == owner,
        deliveries.c.state == "leased").order_by(deliveries.c.id))
    return [(r.id, r.subscriber_id) for r in rows]


def extend(conn: Connection, owner: str, lease_seconds: int) -> None:
    conn.execute(update(deliveries).where(deliveries.c.lease_owner == owner,
                                          deliveries.c.state == "leased")
                 .values(lease_until=utcnow() + timedelta(seconds=lease_seconds)))


def record(conn: Connection, row_id: int, owner: str, state: str, *, reply: str | None = None,
           message_id: str | None = None, retry_at: datetime | None = None,
           counted: bool = True, now: datetime | None = None) -> bool:
    """Final state (or back to the queue with retry_at) for a leased row; False if the lease
    was lost meanwhile (the sender must stop)."""
    now = now or utcnow()
    values = {"state": state, "reply": reply, "lease_owner": None, "lease_until": None,
              "done_at": None if state == "queued" else now}
    if message_id is not None:
        values["message_id"] = message_id
    if state == "queued":
        values["next_attempt_at"] = retry_at
    if state != "skipped" and counted:
        values["attempts"] = deliveries.c.attempts + 1
        values["first_attempt_at"] = func.coalesce(deliveries.c.first_attempt_at, now)
    result = conn.execute(update(deliveries).where(
        deliveries.c.id == row_id, deliveries.c.lease_owner == owner,
        deliveries.c.state == "leased").values(**values))
    return result.rowcount == 1


def emit_outcomes(conn: Connection, row_ids: list[int]) -> None:
    """delivery.outcomes for rows that reached a final state — only when something listens
    (it runs per message)."""
    if row_ids and events.DELIVERY_OUTCOMES.wanted(conn):
        events.DELIVERY_OUTCOMES.emit(conn, outcomes=outcomes(conn, row_ids))


def outcomes(conn: Connection, row_ids: list[int]) -> list[list]:
    """[[campaign id, subscriber id, occurrence, state]] of ledger rows (delivery.outcomes)."""
    rows = conn.execute(select(deliveries.c.campaign_id, deliveries.c.subscriber_id,
                               deliveries.c.occurrence, deliveries.c.state)
                        .where(deliveries.c.id.in_(row_ids)).order_by(deliveries.c.id))
    return [list(r) for r in rows]


def row_person(conn: Connection, row_id: int) -> tuple[int, int]:
    """(campaign id, subscriber id) of a ledger row."""
    row = conn.execute(select(deliveries.c.campaign_id, deliveries.c.subscriber_id)
                       .where(deliveries.c.id == row_id)).one()
    return row.campaign_id, row.subscriber_id


def row_address(conn: Connection, row_id: int) -> str | None:
    """The address of a ledger row that names no subscriber (a transactional send to an
    outside address keeps it in the row's context)."""
    context = conn.execute(select(deliveries.c.context).where(deliveries.c.id == row_id)).scalar()
    return (context or {}).get("to") if isinstance(context, dict) else None


# The hot path of the campaign sender (one call per group commit): plain SQL on the driver's
# cursor, inside the caller's transaction — SQLAlchemy's per-execution work cost more here
# than the UPDATE itself. Parameters: reply, message id, now, now, row id, owner.
_SENT_SQL = ("UPDATE {table} SET state = 'sent', reply = {p}, message_id = {p}, lease_owner = NULL, "
             "lease_until = NULL, done_at = {p}, attempts = attempts + 1, "
             "first_attempt_at = COALESCE(first_attempt_at, {p}) "
             "WHERE id = {p} AND lease_owner = {p} AND state = 'leased'")


def _sent_sql(dialect) -> str:
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    return _SENT_SQL.format(table=deliveries.name, p=mark)


def record_sent(conn: Connection, items: list[tuple[int, str, str, str]],
                now: datetime | None = None) -> list[bool]:
    """Many sent rows [(row id, owner, reply, message id)] in one statement, inside the
    caller's transaction; per item, whether its lease still held."""
    cursor = conn.connection.cursor()
    try:
        return _record_sent(cursor, conn.dialect, items, now)
    finally:
        cursor.close()


def commit_sent(conn: Connection, items: list[tuple[int, str, str, str]],
                now: datetime | None = None) -> list[bool]:
    """`record_sent` in a transaction of its own, begun and committed on the driver's
    connection: SQLAlchemy's begin/commit machinery cost the sender's parent more than the
    group's UPDATE. `conn` must not be in a transaction."""
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor()
    try:
        if conn.dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")       # the driver is in autocommit mode (db/)
        oks = _record_sent(cursor, conn.dialect, items, now)
        dbapi.commit()
        return oks
    except BaseException:
        dbapi.rollback()
        raise
    finally:
        cursor.close()


def _record_sent(cursor, dialect, items, now) -> list[bool]:
    if not items:
        return []
    now = now or utcnow()
    stamp = deliveries.c.done_at.type.bind_processor(dialect)
    at = stamp(now) if stamp else now
    cursor.executemany(_sent_sql(dialect), [(reply, mid, at, at, r, o) for r, o, reply, mid in items])
    if cursor.rowcount == len(items):
        return [True] * len(items)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    cursor.execute(f"SELECT id FROM {deliveries.name} WHERE state = 'sent' AND done_at = {mark} "
                   f"AND id IN ({', '.join([mark] * len(items))})", (at, *[r for r, *_ in items]))
    done = {row[0] for row in cursor.fetchall()}
    return [r in done for r, *_ in items]


def release(conn: Connection, owner: str) -> int:
    """Back to the queue: rows leased by a sender that stops without sending them."""
    return conn.execute(update(deliveries).where(deliveries.c.lease_owner == owner,
                                                 deliveries.c.state == "leased")
                        .values(state="queued", lease_owner=None, lease_until=None)).rowcount


def attempts(conn: Connection, row_id: int) -> tuple[datetime | None, int]:
    """(first attempt, attempts so far) of a row."""
    row = conn.execute(select(deliveries.c.first_attempt_at, deliveries.c.attempts).where(
        deliveries.c.id == row_id)).one()
    return row[0], row[1]


def recover(conn: Connection, campaign_id: int | None = None, now: datetime | None = None) -> int:
    """Leases whose holder died or expired: the first row in-doubt, the rest queued again.
    Run `journal.replay` first. When the holder's journal cannot have been replayed
    (`journal_trusted`), its first UNCOMMITTED_WINDOW + 1 rows are in doubt instead."""
    now = now or utcnow()
    query = select(deliveries.c.lease_owner, func.min(deliveries.c.lease_until)).where(
        deliveries.c.state == "leased").group_by(deliveries.c.lease_owner)
    if campaign_id is not None:
        query = query.where(deliveries.c.campaign_id == campaign_id)
    recovered = 0
    for owner, until in conn.execute(query).all():
        if not (until <= now or owner_dead(owner)):
            continue
        doubtful = 1 if journal_trusted(owner) else UNCOMMITTED_WINDOW + 1
        first = select(deliveries.c.id).where(
            deliveries.c.lease_owner == owner, deliveries.c.state == "leased"
        ).order_by(deliveries.c.id).limit(doubtful)
        ids = list(conn.execute(first).scalars())
        conn.execute(update(deliveries).where(deliveries.c.id.in_(ids),
                                              deliveries.c.state == "leased").values(
            state="in_doubt", lease_owner=None, lease_until=None, done_at=now,
            reply="the sender stopped while this message was with the relay; it may have been "
                  "delivered, so it is not sent again"))
        emit_outcomes(conn, ids)
        release(conn, owner)
        recovered += 1
    return recovered


def cancel_rows(conn: Connection, campaign_id: int) -> int:
    return conn.execute(update(deliveries).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state.in_(("queued", "held"))).values(
        state="cancelled", done_at=utcnow(), reply="campaign cancelled")).rowcount


def counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    rows = conn.execute(select(deliveries.c.state, func.count()).where(
        deliveries.c.campaign_id == campaign_id).group_by(deliveries.c.state)).all()
    found = {state: n for state, n in rows}
    return {state: found.get(state, 0) for state in
            ("queued", "leased", "held", "sent", "failed", "in_doubt", "skipped", "cancelled")}


def next_due(conn: Connection, campaign_id: int) -> datetime | None:
    """When the earliest queued row may be tried (None: none queued)."""
    row = conn.execute(select(func.count(), func.min(case(
        (deliveries.c.next_attempt_at.is_(None), None), else_=deliveries.c.next_attempt_at)),
        func.sum(case((deliveries.c.next_attempt_at.is_(None), 1), else_=0))).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "queued")).one()
    if not row[0]:
        return None
    if row[2]:
        return utcnow()
    value = row[1]
    if isinstance(value, str):          # SQLite hands back MIN() of a timestamp as text
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        from datetime import UTC
        value = value.replace(tzinfo=UTC)
    return value


def sent_since(conn: Connection, campaign_id: int, since: datetime) -> int:
    return conn.execute(select(func.count()).select_from(deliveries).where(
        and_(deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sent",
             deliveries.c.done_at >= since))).scalar_one()


def has_live_lease(conn: Connection, campaign_id: int) -> bool:
    """Whether some sender holds an unexpired lease on this campaign's rows."""
    return conn.execute(select(deliveries.c.id).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.state == "leased",
        deliveries.c.lease_until > utcnow()).limit(1)).first() is not None
