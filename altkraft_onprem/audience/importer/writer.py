"""The bulk writer: one batch of validated, de-duplicated records -> a handful of statements.

Per batch (whatever its size): one query for suppressions, one for existing subscribers, one
for their memberships, then executemany inserts/updates. Never a query per row.

Outcomes per record: added (new subscriber), updated (fields, list membership or trash state
changed), unchanged, skipped (mode says leave it: `update` adds no one; a new person in
`update` mode), suppressed (address or domain on the suppression list: not imported).
`add` mode never changes an existing person's fields but does add them to the target lists.
An import brings a person back from the trash (their history is kept).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from altkraft_onprem.audience.models import (
    STANDARD_FIELDS,
    email_domain,
    subscriber_activity,
    subscriber_lists,
    subscribers,
    suppressions,
)

PROFILE = STANDARD_FIELDS[1:]          # everything but email


@dataclass
class Record:
    email: str
    values: dict
    custom: dict


@dataclass
class Outcome:
    status: str
    error: str | None = None
    subscriber_id: int | None = None


@dataclass
class WriteOptions:
    list_ids: Sequence[int]
    mode: str = "upsert"                 # add | update | upsert
    status: str = "confirmed"            # membership status for new memberships
    source: str = "import"
    activity: dict = field(default_factory=dict)   # details of the activity entry


def _insert_ignoring_conflicts(conn: Connection, table, index_elements):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements)


class BatchWriter:
    """Writes batches for one import (or one API call); call `write` inside a transaction."""

    def __init__(self, options: WriteOptions):
        self.options = options
        self.confirmations: list[tuple[int, int]] = []   # (subscriber_id, list_id) to confirm
        self._update = (update(subscribers).where(subscribers.c.id == bindparam("_id"))
                        .values({name: bindparam(name) for name in (*PROFILE, "custom", "updated_at",
                                                                    "deleted_at", "deleted_batch")}))

    def write(self, conn: Connection, records: Sequence[Record], now: datetime) -> list[Outcome]:
        opts = self.options
        emails = [r.email for r in records]
        blocked = self._suppressed(conn, emails)
        existing = {row.email: row for row in conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.custom,
                   subscribers.c.deleted_at, *(subscribers.c[n] for n in PROFILE))
            .where(subscribers.c.email.in_(emails)))}
        outcomes: list[Outcome | None] = [None] * len(records)
        fresh: list[tuple[int, dict]] = []
        changed: list[dict] = []
        members: list[tuple[int, int]] = []        # (record index, subscriber id)
        for i, record in enumerate(records):
            if record.email in blocked or email_domain(record.email) in blocked:
                outcomes[i] = Outcome("suppressed", "on the suppression list; not imported")
                continue
            row = existing.get(record.email)
            if row is None:
                if opts.mode == "update":
                    outcomes[i] = Outcome("skipped", "not a subscriber; mode update adds no one")
                    continue
                values = dict.fromkeys(PROFILE)
                values.update(record.values)
                values.update(email=record.email, email_domain=email_domain(record.email),
                              state="active", custom=record.custom, source=opts.source,
                              created_at=now, updated_at=now)
                fresh.append((i, values))
                continue
            merged = {name: row._mapping[name] for name in PROFILE}
            custom = dict(row.custom or {})
            if opts.mode != "add":
                merged.update(record.values)
                custom.update(record.custom)
            differs = row.deleted_at is not None or custom != (row.custom or {}) or any(
                merged[name] != row._mapping[name] for name in record.values)
            if differs:
                merged.update(_id=row.id, custom=custom, updated_at=now, deleted_at=None,
                              deleted_batch=None)
                changed.append(merged)
            outcomes[i] = Outcome("updated" if differs else "unchanged", subscriber_id=row.id)
            members.append((i, row.id))
        if fresh:
            conn.execute(_insert_ignoring_conflicts(conn, subscribers, ["email"]),
                         [values for _, values in fresh])
            ids = dict(conn.execute(select(subscribers.c.email, subscribers.c.id).where(
                subscribers.c.email.in_([values["email"] for _, values in fresh]))).all())
            for i, values in fresh:
                outcomes[i] = Outcome("added", subscriber_id=ids[values["email"]])
        if changed:
            conn.execute(self._update, changed)
        self._memberships(conn, outcomes, members, [(i, outcomes[i].subscriber_id) for i, _ in fresh], now)
        self._activity(conn, outcomes, now)
        return outcomes

    def _suppressed(self, conn: Connection, emails: Sequence[str]) -> set[str]:
        domains = {email_domain(e) for e in emails}
        found = set(conn.execute(select(suppressions.c.email).where(suppressions.c.email.in_(emails))).scalars())
        found.update(conn.execute(select(suppressions.c.domain).where(
            suppressions.c.domain.in_(domains))).scalars())
        return found

    def _memberships(self, conn: Connection, outcomes: list[Outcome], existing: list[tuple[int, int]],
                     added: list[tuple[int, int]], now: datetime) -> None:
        opts = self.options
        if not opts.list_ids:
            return
        confirmed = opts.status == "confirmed"
        current: dict[tuple[int, int], str] = {}
        if existing:
            ids = [sid for _, sid in existing]
            current = {(r.subscriber_id, r.list_id): r.status for r in conn.execute(
                select(subscriber_lists.c.subscriber_id, subscriber_lists.c.list_id,
                       subscriber_lists.c.status).where(and_(
                           subscriber_lists.c.subscriber_id.in_(ids),
                           subscriber_lists.c.list_id.in_(list(opts.list_ids)))))}
        new_rows, upgrade = [], []
        for i, sid in (*existing, *added):
            touched = False
            for list_id in opts.list_ids:
                status = current.get((sid, list_id))
                if status is None:
                    new_rows.append({"list_id": list_id, "subscriber_id": sid,
                                     "status": opts.status, "created_at": now, "updated_at": now,
                                     "confirmed_at": now if confirmed else None,
                                     "unsubscribed_at": None})
                    if not confirmed:
                        self.confirmations.append((sid, list_id))
                    touched = True
                elif status == "unconfirmed" and confirmed:
                    upgrade.append({"_sid": sid, "_lid": list_id})
                    touched = True
                # unsubscribed stays unsubscribed: an import never re-subscribes anyone.
            if touched and outcomes[i].status == "unchanged":
                outcomes[i].status = "updated"
        if new_rows:
            conn.execute(_insert_ignoring_conflicts(conn, subscriber_lists, ["list_id", "subscriber_id"]),
                         new_rows)
        if upgrade:
            conn.execute(update(subscriber_lists).where(and_(
                subscriber_lists.c.subscriber_id == bindparam("_sid"),
                subscriber_lists.c.list_id == bindparam("_lid"),
                subscriber_lists.c.status == "unconfirmed")).values(
                    status="confirmed", confirmed_at=now, updated_at=now), upgrade)

    def _activity(self, conn: Connection, outcomes: list[Outcome], now: datetime) -> None:
        rows = []
        for outcome in outcomes:
            if outcome is not None and outcome.status in ("added", "updated"):
                details = json.dumps({**self.options.activity, "result": outcome.status})
                rows.append({"subscriber_id": outcome.subscriber_id, "at": now, "kind": "import",
                             "details": details})
        if rows:
            conn.execute(insert(subscriber_activity), rows)
