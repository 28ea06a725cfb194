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


def test_cohort_activity_migration_fills_what_a_rebuild_computes(tmp_path):
    """0012 derives each person's active periods from the periods already counted (its SQL is
    frozen in the migration); on data it must equal tracking.rollup.rebuild's result."""
    from altkraft_onprem.audience.models import subscribers
    from altkraft_onprem.tracking import rollup
    from altkraft_onprem.tracking.models import (
        engagement_activity,
        engagement_seen,
        tracking_events,
    )

    def at(text_: str) -> datetime:
        return datetime.fromisoformat(text_).replace(tzinfo=UTC)

    joined = {1: "2025-03-10 08:00", 2: "2026-06-30 23:59", 3: "2026-01-31 23:30"}
    events = [(1, "open", "2025-03-10 09:00"), (1, "open", "2025-02-01 09:00"), (1, "click", "2026-07-01 10:00"),
              (2, "open", "2026-07-15 10:00"), (2, "open", "2026-07-16 10:00"), (3, "open", "2026-02-01 00:05"),
              (3, "click", "2026-03-02 12:00"), (3, "open", "2028-01-01 00:00")]
    with empty_database(tmp_path) as url:
        engine = db.build_engine(url)
        try:
            migrate.upgrade(engine, "0011_one_head")
            with db.write(engine) as conn:
                for sid, created in joined.items():
                    conn.execute(insert(subscribers).values(
                        id=sid, email=f"p{sid}@m.example", email_domain="m.example", state="active",
                        custom={}, source="", created_at=at(created), updated_at=at(created)))
                for sid, kind, when in events:
                    conn.execute(insert(tracking_events).values(
                        at=at(when), kind=kind, campaign_id=1, subscriber_id=sid, version_id=1,
                        link_index=0 if kind == "click" else None, machine=False, ip="", user_agent=""))
                # what the roll-up holds by then: the periods already counted
                _seen_before_0012(conn, engagement_seen, tracking_events)
            migrate.upgrade(engine)
            with db.read(engine) as conn:
                migrated = sorted(tuple(r) for r in conn.execute(select(engagement_activity)))
            with db.write(engine) as conn:
                rollup.rebuild(conn)
            with db.read(engine) as conn:
                rebuilt = sorted(tuple(r) for r in conn.execute(select(engagement_activity)))
            assert migrated == rebuilt
            assert (1, "month", "open", 1) in migrated                  # period 0 only; before joining left out
            assert (3, "month", "open", (1 << 1) | (1 << 24)) in migrated
            assert any(r[:3] == (2, "week", "open") and r[3] == 1 << 2 for r in migrated)
        finally:
            engine.dispose()


def _seen_before_0012(conn, engagement_seen, tracking_events) -> None:
    """engagement_seen as the roll-up kept it before 0012 (distinct person, metric and bucket)."""
    from altkraft_onprem.db import periods

    ev = tracking_events.c
    for period in ("week", "month"):
        bucket = periods.bucket(ev.at, period, conn.dialect.name)
        conn.execute(engagement_seen.insert().from_select(
            ["subscriber_id", "metric", "period", "bucket"],
            select(ev.subscriber_id, ev.kind, text(f"'{period}'"), bucket).distinct()))
