"""Storage: the migrations build exactly the declared tables, on SQLite and Postgres alike."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text

import altkraft_onprem.models_all  # noqa: F401  (every domain's tables)
from altkraft_onprem import db
from altkraft_onprem.db import migrate
from altkraft_onprem.db.types import UTCDateTime
from tests.cli_helpers import empty_database
from tests.conftest import DB_KIND


def test_migrations_match_the_declared_tables(env):
    """A table or column declared in a models.py but not migrated (or the other way) fails."""
    with env.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrated_database_has_nothing_pending(env):
    assert migrate.pending(env.engine) == set()


def test_migrations_end_in_one_head(env):
    """Domains may branch during a release; a merge revision joins them before it ships, so
    the next migration has one parent and `db status` names one revision."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(env.engine))
    assert len(script.get_heads()) == 1, script.get_heads()


def test_empty_database_has_every_revision_pending(tmp_path):
    with empty_database(tmp_path) as url:
        engine = db.build_engine(url)
        try:
            assert "0001_foundation" in migrate.pending(engine)
            migrate.upgrade(engine)
            assert migrate.pending(engine) == set()
        finally:
            engine.dispose()


def test_postgres_urls_use_psycopg_3():
    assert db.engine_url("postgresql://u@h/d").startswith("postgresql+psycopg://")
    assert db.engine_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.skipif(DB_KIND != "sqlite", reason="SQLite connection settings")
@pytest.mark.parametrize("pragma,expected", [("journal_mode", "wal"), ("foreign_keys", 1),
                                             ("busy_timeout", 10000)])
def test_sqlite_connection_settings(env, pragma, expected):
    with db.read(env.engine) as conn:
        assert conn.execute(text(f"PRAGMA {pragma}")).scalar() == expected


@pytest.fixture()
def scratch(env):
    """A throwaway table with a UTC timestamp column, dropped afterwards."""
    table = Table("scratch_times", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UTCDateTime()))
    table.create(env.engine)
    yield table
    table.drop(env.engine)


def test_utc_datetime_comes_back_aware_and_in_utc(env, scratch):
    moscow = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=3)))
    with db.write(env.engine) as conn:
        conn.execute(insert(scratch).values(id=1, at=moscow))
    with db.read(env.engine) as conn:
        back = conn.execute(select(scratch.c.at)).scalar()
    assert back == moscow and back.tzinfo is not None and back.utcoffset() == timedelta(0)
    assert back.hour == 9


def test_naive_datetime_is_refused(env, scratch):
    with pytest.raises(Exception, match="naive datetime"):
        with db.write(env.engine) as conn:
            conn.execute(insert(scratch).values(id=2, at=datetime(2026, 1, 1)))


def test_write_rolls_back_on_error(env, scratch):
    with pytest.raises(RuntimeError):
        with db.write(env.engine) as conn:
            conn.execute(insert(scratch).values(id=3, at=datetime.now(UTC)))
            raise RuntimeError("abort")
    with db.read(env.engine) as conn:
        assert conn.execute(select(scratch.c.id).where(scratch.c.id == 3)).first() is None


def test_foreign_keys_are_enforced(env):
    from sqlalchemy.exc import IntegrityError

    from altkraft_onprem.access.models import api_tokens

    with pytest.raises(IntegrityError):
        with db.write(env.engine) as conn:
            conn.execute(insert(api_tokens).values(user_id=987654, name="x", prefix="ak_x",
                                                   token_hash="0" * 64, created_at=datetime.now(UTC)))
