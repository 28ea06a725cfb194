"""Storage: one MetaData for every domain's tables, engine setup for SQLite and Postgres.

Domains declare their tables in `<domain>/models.py` against `metadata`; the schema itself is
created only by the Alembic migrations in db/migrations (the same ones on both databases).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import Connection, Engine, MetaData, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

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
    # Forked job workers must not share the parent's pooled connections.
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return engine


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
        conn.exec_driver_sql(f"BEGIN {mode}")


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


def get_engine() -> Engine:
    return current_app.extensions["altkraft.engine"]


def init_app(app, engine: Engine) -> None:
    app.extensions["altkraft.engine"] = engine
