"""Storage: one MetaData for every domain's tables, engine setup for SQLite and Postgres.

Domains declare their tables in `<domain>/models.py` against `metadata`; the schema itself is
created only by the Alembic migrations in db/migrations (the same ones on both databases).
"""
from __future__ import annotations

import json
import operator
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from flask import current_app
from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    MetaData,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


def engine_url(url: str) -> str:
    """Normalise a configured URL: postgresql:// means psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def build_engine(url: str, *, pool_size: int = 5, busy_timeout_ms: int = 10000) -> Engine:
    url = engine_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000,
                                                  "check_same_thread": False})
        _tune_sqlite(engine, busy_timeout_ms)
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size * 2,
                               pool_pre_ping=True, pool_recycle=1800)
        _limit_postgres_lock_waits(engine, busy_timeout_ms)
    # Forked job workers must not share the parent's pooled connections.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


def _limit_postgres_lock_waits(engine: Engine, busy_timeout_ms: int) -> None:
    """A statement that waits longer than the busy timeout for a lock fails (lock_not_available,
    see `is_busy`) instead of hanging its request, as a SQLite writer does."""
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        try:
            dbapi_conn.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        finally:
            dbapi_conn.autocommit = autocommit


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        # SQLAlchemy, not the driver, decides when transactions begin (see on_begin).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes gets SQLITE_BUSY at once instead of waiting for busy_timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode == "IMMEDIATE":
            begin_immediate(conn.connection.dbapi_connection, busy_timeout_ms)
        else:
            conn.exec_driver_sql(f"BEGIN {mode}")


# How often a writer that waits for SQLite's write lock tries again. SQLite's own busy handler
# backs off to a try every 100 ms, so while other processes commit short transactions back to
# back (the tracking flush under load) a waiting writer kept missing the gaps between them,
# for seconds.
LOCK_POLL_SECONDS = 0.001


def begin_immediate(dbapi_conn, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE on a SQLite driver connection, tried every LOCK_POLL_SECONDS for up to
    `busy_timeout_ms`; then sqlite3.OperationalError "database is locked" (see `is_busy`)."""
    cursor = dbapi_conn.cursor()
    deadline = time.monotonic() + busy_timeout_ms / 1000
    cursor.execute("PRAGMA busy_timeout=0")       # we wait here, not in SQLite's busy handler
    try:
        while True:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _sqlite_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(LOCK_POLL_SECONDS)
    finally:
        # Other statements keep SQLite's handler (e.g. a deferred transaction that writes).
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()


def _sqlite_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def is_busy(exc: BaseException) -> bool:
    """Whether an error means "the database is busy, try again shortly" rather than a fault:
    SQLite's write lock still held after busy_timeout, a Postgres lock timeout, or no pooled
    connection free in time. Requests answer it with 503 and Retry-After."""
    if isinstance(exc, PoolTimeout):
        return True
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(original, sqlite3.OperationalError):
        return _sqlite_busy(original)
    return getattr(original, "sqlstate", None) == "55P03"     # Postgres lock_not_available


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction: commits on success, rolls back on error; then runs what
    `after_commit` registered (only after a commit)."""
    with engine.execution_options(sqlite_begin="IMMEDIATE").connect() as conn:
        try:
            with conn.begin():
                yield conn
        finally:        # the connection goes back to the pool: its info must not keep them
            callbacks = conn.info.pop(_AFTER_COMMIT, {})
    for callback in callbacks.values():     # reached only after the commit
        callback()


_AFTER_COMMIT = "altkraft.after_commit"


def after_commit(conn: Connection, key: str, callback) -> None:
    """Runs `callback()` once after the current transaction commits (a wake-up for the job
    that acts on what it wrote). Keyed: the same key registers once per transaction. Only
    `write` (and callers of `run_after_commit`) run them; whatever acts on them must also
    find the work without the call (a periodic sweep), as a crash can come in between."""
    conn.info.setdefault(_AFTER_COMMIT, {}).setdefault(key, callback)


def run_after_commit(conn: Connection) -> None:
    """Runs (and forgets) the callbacks registered for the transaction just committed."""
    for callback in conn.info.pop(_AFTER_COMMIT, {}).values():
        callback()


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only unit of work (rolled back at the end)."""
    with engine.connect() as conn:
        yield conn


def insert_ignoring_conflicts(conn: Connection, table, index_elements=None):
    """INSERT … ON CONFLICT DO NOTHING on either database (a row whose UNIQUE key exists is
    skipped; with index_elements, only a conflict on that key)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=index_elements)


def among(conn: Connection, column, values):
    """`column IN values` with the values as ONE bound parameter (a JSON array on SQLite, an
    array on Postgres): SQLAlchemy would otherwise render a parameter per value, and compiling
    those costs more than running the query."""
    if conn.dialect.name == "postgresql":
        return column == func.any(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    items = select(literal_column("value")).select_from(
        func.json_each(bindparam(None, json.dumps(list(values)))))
    return column.in_(items.scalar_subquery())


def lookup(conn: Connection, column, values, *filters):
    """`column IN values AND filters`, found through `column` (a primary key or an indexed
    column) and then filtered. SQLite's planner, without statistics, would rather scan an
    index on a filter's column (state = 'active', a segment's country) than look up the
    given values, whose number it cannot see in `among`'s one parameter: on SQLite the
    filters are wrapped in a unary + (SQLite's documented way to keep a term off an index)."""
    found = among(conn, column, values)
    if not filters:
        return found
    rest = and_(*filters)
    if conn.dialect.name == "sqlite":
        rest = UnaryExpression(rest.self_group(), operator=operators.custom_op("+"),
                               type_=Boolean())
    return and_(found, rest)


# (table, keys, dialect) -> (the INSERT, its positional parameter order or None, the
# defaults of columns the rows leave out)
_INSERTS: dict[tuple, tuple[str, tuple[str, ...] | None, dict]] = {}


def insert_many(conn: Connection, table, rows: list[dict]) -> None:
    """INSERT of many rows through the driver's executemany. Each column's bind processing
    (JSON, UTC times) runs once per distinct value object instead of through SQLAlchemy's
    per-row parameter machinery, which costs more than the insert itself when a batch writes
    thousands of rows (workflow steps, activity, audit entries).

    Every row has the same keys, those of the first (ValueError otherwise). A column left out
    gets its server default or NULL as in any INSERT, and a constant Python-side default
    (`Column(default="")`) is filled in; a column whose Python-side default is computed
    (a callable, an SQL expression, a sequence) must be given in every row: ValueError names
    it (SQLAlchemy would compute it per row, which this path skips)."""
    if not rows:
        return
    given = tuple(rows[0])
    cache_key = (table.name, given, conn.dialect.name)
    if cache_key not in _INSERTS:
        _INSERTS[cache_key] = _compile_insert(conn, table, given)
    sql, positions, defaults = _INSERTS[cache_key]
    keys = tuple(defaults) + given
    order = positions or keys
    convert = []                # (position, processor, {id(value): processed value})
    for position, key in enumerate(order):
        process = table.c[key].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        if process is not None:
            convert.append((position, process, {}))
    take = operator.itemgetter(*order)
    params = []
    for number, row in enumerate(rows):
        if len(row) != len(given):
            _other_keys(table, number, row, given)
        full = {**defaults, **row} if defaults else row
        try:
            values = list(take(full)) if len(order) > 1 else [full[order[0]]]
        except KeyError:
            _other_keys(table, number, row, given)
        for position, process, seen in convert:
            item = values[position]
            done = seen.get(id(item), seen)
            if done is seen:
                done = seen[id(item)] = process(item)
            values[position] = done
        params.append(tuple(values) if positions is not None else dict(zip(keys, values, strict=True)))
    conn.exec_driver_sql(sql, params)


def _other_keys(table, number: int, row: dict, given: tuple[str, ...]) -> NoReturn:
    raise ValueError(f"insert_many into {table.name}: row {number} has the keys "
                     f"{sorted(row)}, the first row {sorted(given)} (all rows need the same keys)")


def _compile_insert(conn: Connection, table, keys: tuple[str, ...]):
    """The INSERT of `keys`, its positional order, and the constant defaults of the columns
    with a Python-side default that `keys` leave out (see insert_many)."""
    unknown = sorted(set(keys) - set(table.c.keys()))
    if unknown:
        raise ValueError(f"insert_many into {table.name}: no column {', '.join(unknown)}")
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=list(keys))
    defaults, computed = {}, []
    for column in compiled.insert_prefetch:       # Python-side defaults SQLAlchemy would run
        if column.key in keys:
            continue
        if column.default is not None and column.default.is_scalar:
            defaults[column.key] = column.default.arg
        else:
            computed.append(column.key)
    if computed:
        raise ValueError(f"insert_many into {table.name}: give {', '.join(computed)} in every "
                         "row (a computed Python-side default, which insert_many does not run)")
    return str(compiled), tuple(compiled.positiontup or ()) or None, defaults


def chunked(items, size: int) -> Iterator[list]:
    """Consecutive lists of at most `size` items (IN lists and multi-row statements stay
    under the drivers' parameter limits)."""
    items = list(items)
    for start in range(0, len(items), size):
        yield items[start:start + size]


def get_engine() -> Engine:
    return current_app.extensions["altkraft.engine"]


def init_app(app, engine: Engine) -> None:
    app.extensions["altkraft.engine"] = engine
