"""The bulk writer: one batch of validated, de-duplicated records -> a handful of statements.

Per batch (whatever its size): one query for suppressions, one for existing subscribers, one
for their memberships, then executemany inserts/updates. Never a query per row.

Outcomes per record: added (new subscriber), updated (fields, list membership or trash state
changed), unchanged, skipped (mode says leave it: `update` adds no one; a new person in
`update` mode), suppressed (address or domain on the suppression list: not imported).
`add` mode never changes an existing person's fields but does add them to the target lists.
An import brings a person back from the trash (their history is kept).

A file import (`import_id` set) records what it changed in people who existed already — new
memberships and the fields' values before and after — in import_changes, a few statements per
batch, so that it can be undone (undo.py); the people it added carry its source.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import (
    Connection,
    Date,
    Integer,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from altkraft_onprem import events
from altkraft_onprem.audience.models import (
    STANDARD_FIELDS,
    consents,
    email_domain,
    subscriber_activity,
    subscriber_lists,
    subscribers,
    suppressions,
)
from altkraft_onprem.db import among

from .bulk import Bulk
from .models import import_changes

PROFILE = STANDARD_FIELDS[1:]          # everything but email
INSERT_KEYS = ("email", "email_domain", "state", *PROFILE, "custom", "source", "created_at", "updated_at")
DATE_FIELDS = frozenset(name for name in PROFILE if isinstance(subscribers.c[name].type, Date))
DATE_POSITIONS = tuple(i for i, name in enumerate(PROFILE) if name in DATE_FIELDS)
UPDATE_KEYS = (*PROFILE, "custom", "updated_at", "deleted_at", "deleted_batch", "_id")
CHANGE_KEYS = ("import_id", "kind", "subscriber_id", "list_id", "at", "changes")


class Record(NamedTuple):
    """One validated person. An import's reader sends `stored` (see stored_profile) instead
    of the two dicts: the writer needs the dicts only for people who exist already."""
    email: str
    values: dict | None
    custom: dict | None
    stored: tuple | None = None

    def profile(self) -> tuple[dict, dict]:
        """(standard values, custom values)."""
        if self.stored is None:
            return self.values, self.custom
        values = {name: value for name, value in zip(PROFILE, self.stored[:-1], strict=True)
                  if value is not None}
        for name in DATE_FIELDS & values.keys():
            values[name] = date.fromisoformat(values[name])
        return values, json.loads(self.stored[-1])


def stored_profile(values: dict, custom: dict) -> tuple:
    """A person's profile as the subscribers INSERT binds it: PROFILE order (absent: None),
    dates as ISO text (SQLite's storage format, and what COPY reads), then the custom fields
    as JSON text (what the JSON column type would have made of them)."""
    row = [values.get(name) for name in PROFILE]
    for i in DATE_POSITIONS:
        if row[i] is not None:
            row[i] = row[i].isoformat()
    row.append(json.dumps(custom))
    return tuple(row)


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
    consent_form: str = "import"                    # the consent record's "form"
    double_optin: frozenset[int] = frozenset()      # target lists that confirm by email
    import_id: int | None = None                    # a file import: record changes for undo


def copy_subscribers(conn: Connection, rows: Sequence[tuple]) -> dict[str, int]:
    """Postgres: new subscribers (rows in INSERT_KEYS order) by COPY into a temporary table,
    then one INSERT … SELECT … ON CONFLICT DO NOTHING; returns {email: id} of the rows
    inserted. COPY costs a fraction of a parameterised INSERT per row on both sides of the
    connection."""
    columns = ", ".join(INSERT_KEYS)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"CREATE TEMPORARY TABLE import_batch ON COMMIT DROP AS "
                       f"SELECT {columns} FROM subscribers WITH NO DATA")
        with cursor.copy(f"COPY import_batch ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO subscribers ({columns}) SELECT {columns} FROM import_batch "
                       "ON CONFLICT (email) DO NOTHING RETURNING email, id")
        ids = dict(cursor.fetchall())
        cursor.execute("DROP TABLE import_batch")
        return ids
    finally:
        cursor.close()


def _insert_ignoring_conflicts(conn: Connection, table, index_elements):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements).inline()


def id_rows(conn: Connection, ids: Sequence[int]):
    """The ids as rows of one column, `value`, from ONE bound parameter (see `among`)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return func.unnest(bindparam(None, list(ids), type_=ARRAY(Integer))).table_valued(
            "value").render_derived()
    return func.json_each(bindparam(None, json.dumps(list(ids)))).table_valued("value")


def insert_per_subscriber(conn: Connection, table, ids: Sequence[int], values: dict,
                          ignore_conflicts: Sequence[str] = ()) -> None:
    """One row per subscriber id into `table` (the same `values` in each) as ONE
    INSERT … SELECT: the database makes the rows, no parameters per row."""
    source = id_rows(conn, ids)
    rows = select(source.c.value, *[literal(value, type_=table.c[key].type) for key, value in values.items()])
    if ignore_conflicts:
        # SQLite reads "SELECT … FROM f(?) ON CONFLICT" as a join's ON without the WHERE.
        statement = _insert_ignoring_conflicts(conn, table, list(ignore_conflicts)).from_select(
            ["subscriber_id", *values], rows.where(true()))
    else:
        statement = insert(table).from_select(["subscriber_id", *values], rows)
    conn.execute(statement)


class BatchWriter:
    """Writes batches for one import (or one API call); call `write` inside a transaction."""

    def __init__(self, options: WriteOptions):
        self.options = options
        self.confirmations: list[tuple[int, int]] = []   # (subscriber_id, list_id) to confirm
        self._statements: dict[str, Bulk] = {}

    def _bulk(self, conn: Connection, name: str) -> Bulk:
        """The batch statements, compiled once per writer."""
        found = self._statements.get(name)
        if found is None:
            if name == "insert":
                found = Bulk(conn, _insert_ignoring_conflicts(conn, subscribers, ["email"]), INSERT_KEYS)
                if found.names != list(INSERT_KEYS) or not found.positional:
                    raise RuntimeError("the subscribers INSERT no longer binds INSERT_KEYS in order")
            elif name == "changes":
                found = Bulk(conn, insert(import_changes), CHANGE_KEYS)
            else:
                statement = (update(subscribers).where(subscribers.c.id == bindparam("_id"))
                             .values({key: bindparam(key) for key in UPDATE_KEYS[:-1]}))
                found = Bulk(conn, statement, UPDATE_KEYS)
            self._statements[name] = found
        return found

    def write(self, conn: Connection, records: Sequence[Record], now: datetime) -> list[Outcome]:
        opts = self.options
        blocked = self._suppressed(conn, [r.email for r in records])
        outcomes: list[Outcome | None] = [None] * len(records)
        candidates: list[tuple[int, str]] = []      # (record index, email domain)
        for i, record in enumerate(records):
            domain = record.email.rpartition("@")[2]
            if blocked and (record.email in blocked or domain in blocked):
                outcomes[i] = Outcome("suppressed", "on the suppression list; not imported")
            else:
                candidates.append((i, domain))
        added: dict[str, int] = {}
        if opts.mode != "update" and candidates:
            # Insert first, skipping whoever exists (ON CONFLICT DO NOTHING): one probe of the
            # email index per new person instead of a lookup and then the insert's own.
            added = self._insert(conn, [
                (records[i].email, domain, "active",
                 *(records[i].stored or stored_profile(records[i].values, records[i].custom)))
                for i, domain in candidates], now)
        others = [records[i].email for i, _ in candidates if records[i].email not in added]
        existing = {row.email: row for row in conn.execute(
            select(subscribers.c.id, subscribers.c.email, subscribers.c.custom,
                   subscribers.c.deleted_at, *(subscribers.c[n] for n in PROFILE))
            .where(among(conn, subscribers.c.email, others)))} if others else {}
        changed: list[dict] = []
        recorded: list[dict] = []                  # import_changes rows of updated people
        members: list[tuple[int, int]] = []        # (record index, subscriber id) of existing people
        new_members: list[tuple[int, int]] = []
        for i, _ in candidates:
            record = records[i]
            subscriber_id = added.get(record.email)
            if subscriber_id is not None:
                outcomes[i] = Outcome("added", subscriber_id=subscriber_id)
                new_members.append((i, subscriber_id))
                continue
            row = existing.get(record.email)
            if row is None:
                outcomes[i] = Outcome("skipped", "not a subscriber; mode update adds no one"
                                      if opts.mode == "update" else "deleted meanwhile; not imported")
                continue
            values, new_custom = record.profile()
            stored = row._mapping                   # a new mapping object at each access
            before = {name: stored[name] for name in PROFILE}
            merged = dict(before)
            custom = dict(row.custom or {})
            if opts.mode != "add":
                merged.update(values)
                custom.update(new_custom)
            differs = row.deleted_at is not None or custom != (row.custom or {}) or any(
                merged[name] != before[name] for name in values)
            if differs:
                if opts.import_id is not None:
                    recorded.append(_field_changes(row, before, merged, values, custom))
                merged.update(_id=row.id, custom=custom)
                changed.append(merged)
            outcomes[i] = Outcome("updated" if differs else "unchanged", subscriber_id=row.id)
            members.append((i, row.id))
        if changed:
            self._bulk(conn, "update").run(conn, changed, {
                "updated_at": now, "deleted_at": None, "deleted_batch": None})
        if recorded:
            self._record_updates(conn, recorded, now)
        joined = self._memberships(conn, outcomes, members, new_members, now)
        self._activity(conn, outcomes, now)
        if events.SUBSCRIBERS_IMPORTED.has_handlers:
            events.SUBSCRIBERS_IMPORTED.emit(
                conn, import_id=opts.activity.get("import"), added=sorted(added.values()),
                updated=[o.subscriber_id for o in outcomes if o is not None and o.status == "updated"],
                joined=[[list_id, ids] for list_id, ids in sorted(joined.items())])
        return outcomes

    def _record_updates(self, conn: Connection, recorded: list[dict], now: datetime) -> None:
        """The updated people's import_changes rows (COPY on Postgres, as for new people)."""
        if conn.dialect.name != "postgresql":
            self._bulk(conn, "changes").run(conn, recorded, {
                "import_id": self.options.import_id, "kind": "updated", "list_id": None, "at": now})
            return
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            with cursor.copy("COPY import_changes (import_id, kind, subscriber_id, at, changes) "
                             "FROM STDIN") as copy:
                for row in recorded:
                    copy.write_row((self.options.import_id, "updated", row["subscriber_id"], now,
                                    row["changes"]))
        finally:
            cursor.close()

    def _insert(self, conn: Connection, rows: list[tuple], now: datetime) -> dict[str, int]:
        """New subscribers (rows: INSERT_KEYS up to custom) unless their email exists;
        returns {email: id} of those inserted."""
        source = self.options.source
        if conn.dialect.name == "postgresql":
            return copy_subscribers(conn, [(*row, source, now, now) for row in rows])
        statement = self._bulk(conn, "insert")
        tail = (statement.convert("source", source), statement.convert("created_at", now),
                statement.convert("updated_at", now))
        # This transaction writes alone (SQLite has one writer): the rows above the highest
        # id before the insert are the ones it added.
        before = conn.execute(select(func.max(subscribers.c.id))).scalar() or 0
        conn.exec_driver_sql(statement.sql, [row + tail for row in rows])
        return dict(conn.execute(select(subscribers.c.email, subscribers.c.id).where(
            subscribers.c.id > before)).all())

    def _suppressed(self, conn: Connection, emails: Sequence[str]) -> set[str]:
        if conn.execute(select(suppressions.c.id).limit(1)).first() is None:
            return set()          # the common case: nothing to look up
        domains = sorted({email_domain(e) for e in emails})
        found = set(conn.execute(select(suppressions.c.email).where(
            among(conn, suppressions.c.email, emails))).scalars())
        found.update(conn.execute(select(suppressions.c.domain).where(
            among(conn, suppressions.c.domain, domains))).scalars())
        return found

    def _memberships(self, conn: Connection, outcomes: list[Outcome], existing: list[tuple[int, int]],
                     added: list[tuple[int, int]], now: datetime) -> dict[int, list[int]]:
        """Writes the memberships; returns {list id: subscriber ids} that joined a list."""
        opts = self.options
        if not opts.list_ids:
            return {}
        confirmed = opts.status == "confirmed"
        current: dict[tuple[int, int], str] = {}
        if existing:
            ids = [sid for _, sid in existing]
            current = {(r.subscriber_id, r.list_id): r.status for r in conn.execute(
                select(subscriber_lists.c.subscriber_id, subscriber_lists.c.list_id,
                       subscriber_lists.c.status).where(and_(
                           among(conn, subscriber_lists.c.subscriber_id, ids),
                           subscriber_lists.c.list_id.in_(list(opts.list_ids)))))}
        new_rows: dict[int, list[int]] = {}        # list id -> subscriber ids
        upgrade = []
        for i, sid in (*existing, *added):
            touched = False
            for list_id in opts.list_ids:
                status = current.get((sid, list_id))
                if status is None:
                    new_rows.setdefault(list_id, []).append(sid)
                    if not confirmed and list_id in opts.double_optin:
                        self.confirmations.append((sid, list_id))
                    touched = True
                elif status == "unconfirmed" and confirmed:
                    upgrade.append({"_sid": sid, "_lid": list_id})
                    touched = True
                # unsubscribed stays unsubscribed: an import never re-subscribes anyone.
            if touched and outcomes[i].status == "unchanged":
                outcomes[i].status = "updated"
        added_ids = {sid for _, sid in added} if opts.import_id is not None else set()
        for list_id, ids in new_rows.items():
            if opts.import_id is not None:
                existed = [sid for sid in ids if sid not in added_ids]
                if existed:
                    insert_per_subscriber(conn, import_changes, existed, {
                        "import_id": opts.import_id, "kind": "joined", "list_id": list_id, "at": now})
            insert_per_subscriber(conn, subscriber_lists, ids, {
                "list_id": list_id, "status": opts.status, "created_at": now, "updated_at": now,
                "confirmed_at": now if confirmed else None, "unsubscribed_at": None},
                ignore_conflicts=("list_id", "subscriber_id"))
            insert_per_subscriber(conn, consents, ids, {
                "list_id": list_id, "kind": "import", "at": now, "ip": "", "user_agent": "",
                "form": opts.consent_form[:200]})
        if upgrade:
            conn.execute(update(subscriber_lists).where(and_(
                subscriber_lists.c.subscriber_id == bindparam("_sid"),
                subscriber_lists.c.list_id == bindparam("_lid"),
                subscriber_lists.c.status == "unconfirmed")).values(
                    status="confirmed", confirmed_at=now, updated_at=now), upgrade)
        return new_rows

    def _activity(self, conn: Connection, outcomes: list[Outcome], now: datetime) -> None:
        for status in ("added", "updated"):
            ids = [o.subscriber_id for o in outcomes if o is not None and o.status == status]
            if ids:
                insert_per_subscriber(conn, subscriber_activity, ids, {
                    "at": now, "kind": "import",
                    "details": json.dumps({**self.options.activity, "result": status})})


def plain(value):
    """A field's value as the import_changes JSON holds it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, date) else value


def _field_changes(row, before: dict, merged: dict, values: dict, custom: dict) -> dict:
    """The import_changes values of one updated person: each field's value before and after."""
    fields = {name: [plain(before[name]), plain(merged[name])]
              for name in values if merged[name] != before[name]}
    stored = row.custom or {}
    fields.update({f"custom.{key}": [plain(stored.get(key)), plain(value)]
                   for key, value in custom.items() if stored.get(key) != value})
    changes = {"fields": fields}
    if row.deleted_at is not None:
        changes["trash"] = True
    return {"subscriber_id": row.id, "changes": json.dumps(changes, ensure_ascii=False)}
