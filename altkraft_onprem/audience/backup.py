"""Consistent snapshots of the whole database: SQLite's online backup API (safe while the
service runs), pg_dump/pg_restore (custom format) for Postgres."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from altkraft_onprem.errors import ServiceError

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ServiceError("the SQLite database is in memory: nothing to back up", "database.url")
    return Path(database)


def _libpq_uri(url: str) -> str:
    """postgresql+psycopg://… -> postgresql://… as libpq tools expect."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ServiceError("%(name)s is not installed (apt-get install postgresql-client)", name, name=name)
    return found


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise ServiceError("%(name)s failed: %(reason)s", name=Path(args[0]).name,
                           reason=reason[-1] if reason else result.returncode)


def backup(url: str, target: Path) -> int:
    """Writes a snapshot to `target` (replaced atomically); returns its size in bytes."""
    target = Path(target)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    if make_url(url).get_backend_name() == "sqlite":
        source = sqlite3.connect(_sqlite_path(url))
        destination = sqlite3.connect(partial)
        try:
            with destination:
                # One step: a single read transaction, so in WAL mode writers go on meanwhile
                # and the copy is one consistent snapshot (stepwise copies restart on writes).
                source.backup(destination)
        finally:
            destination.close()
            source.close()
    else:
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(partial),
              "--dbname", _libpq_uri(url)])
    partial.replace(target)
    return target.stat().st_size


def restore(url: str, source: Path) -> None:
    """Replaces the database's contents with a snapshot made by `backup`. Stop the service
    (and workers) first: open connections would keep serving the old data."""
    source = Path(source)
    if not source.is_file():
        raise ServiceError("no such file: %(source)s", "file", source=source)
    with source.open("rb") as handle:
        head = handle.read(16)
    if make_url(url).get_backend_name() == "sqlite":
        if head != SQLITE_MAGIC:
            raise ServiceError("%(source)s is not a SQLite backup", "file", source=source)
        snapshot = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in snapshot.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" not in tables:
                raise ServiceError("%(source)s is not an ALTKRAFT database", "file", source=source)
            live = sqlite3.connect(_sqlite_path(url))
            try:
                with live:
                    snapshot.backup(live)
            finally:
                live.close()
        finally:
            snapshot.close()
        return
    if not head.startswith(PG_MAGIC):
        raise ServiceError("%(source)s is not a pg_dump custom-format backup", "file", source=source)
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
          "--dbname", _libpq_uri(url), str(source)])
