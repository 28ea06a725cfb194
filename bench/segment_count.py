"""Segment count benchmark: N subscribers (default 1,000,000) generated with bulk SQL, a saved
segment with two field conditions (country, a custom choice field) and one list condition,
counted through the real segment compiler; compared with a plain COUNT(*) over the same table
measured in the same run.

    python bench/segment_count.py [--rows N] [--database URL] [--repeat K]

The last line printed is one JSON object: rows, matched, count_s (best of K), first_s,
baseline_s, ratio, database.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid

from sqlalchemy import create_engine, func, select, text

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import fields, lists, segments
from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.db import migrate

ACTOR = system_actor("bench")

SQLITE_FILL = """
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :rows)
INSERT INTO subscribers (id, email, email_domain, state, first_name, country, custom, source,
                         created_at, updated_at)
SELECT n, 'user' || n || '@d' || (n % 1000) || '.example.com', 'd' || (n % 1000) || '.example.com',
       'active', 'Name' || (n % 5000),
       CASE n % 10 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' WHEN 3 THEN 'RU'
            WHEN 4 THEN 'GB' WHEN 5 THEN 'IT' WHEN 6 THEN 'ES' WHEN 7 THEN 'PL' WHEN 8 THEN 'NL'
            ELSE 'SE' END,
       json_object('plan', CASE n % 7 WHEN 0 THEN 'gold' WHEN 1 THEN 'silver' ELSE 'free' END,
                   'score', n % 100),
       'bench', '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000'
FROM seq
"""
PG_FILL = """
INSERT INTO subscribers (id, email, email_domain, state, first_name, country, custom, source,
                         created_at, updated_at)
SELECT n, 'user' || n || '@d' || (n % 1000) || '.example.com', 'd' || (n % 1000) || '.example.com',
       'active', 'Name' || (n % 5000),
       (ARRAY['DE','FR','US','RU','GB','IT','ES','PL','NL','SE'])[(n % 10) + 1],
       jsonb_build_object('plan', CASE n % 7 WHEN 0 THEN 'gold' WHEN 1 THEN 'silver' ELSE 'free' END,
                          'score', n % 100),
       'bench', '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00'
FROM generate_series(1, :rows) AS n
"""
MEMBERS = """
INSERT INTO subscriber_lists (list_id, subscriber_id, status, created_at, updated_at)
SELECT :list_id, id, CASE WHEN id % 4 = 0 THEN 'unconfirmed' ELSE 'confirmed' END,
       created_at, created_at FROM subscribers WHERE id % :every = 0
"""


def prepare_database(url: str | None) -> tuple[str, callable]:
    if url is None:
        folder = tempfile.mkdtemp(prefix="ak-segbench-")
        return f"sqlite:///{folder}/bench.db", lambda: shutil.rmtree(folder, ignore_errors=True)
    if url.startswith("postgres"):
        name = f"ak_segbench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(db.engine_url(url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return url.rsplit("/", 1)[0] + "/" + name, drop
    return url, lambda: None


def timed(fn, repeat: int) -> tuple[float, float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), times[0], result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", help="SQLAlchemy URL of a Postgres server database "
                        "(a scratch database is created next to it); default: a SQLite file")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    url, drop = prepare_database(args.database)
    engine = db.build_engine(url)
    try:
        migrate.upgrade(engine)
        start = time.perf_counter()
        with db.write(engine) as conn:
            news = lists.create_list(conn, ACTOR, "News")
            other = lists.create_list(conn, ACTOR, "Other")
            fill = PG_FILL if conn.dialect.name == "postgresql" else SQLITE_FILL
            conn.execute(text(fill), {"rows": args.rows})
            conn.execute(text(MEMBERS), {"list_id": news, "every": 2})
            conn.execute(text(MEMBERS), {"list_id": other, "every": 3})
            fields.create_field(conn, ACTOR, "plan", "Plan", "choice", ["free", "silver", "gold"])
            fields.create_field(conn, ACTOR, "score", "Score", "number")
            segment_id = segments.create_segment(conn, ACTOR, "Gold in Germany on News", {
                "op": "and", "rules": [
                    {"field": "country", "operator": "eq", "value": "DE"},
                    {"field": "custom.plan", "operator": "eq", "value": "gold"},
                    {"list": news, "operator": "member", "status": "confirmed"}]})
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        print(f"generated {args.rows} subscribers in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)

        def segment_count():
            with db.read(engine) as conn:
                return segments.count(conn, segments.get_segment(conn, segment_id)["conditions"])

        def plain_count():
            with db.read(engine) as conn:
                return conn.execute(select(func.count()).select_from(subscribers)).scalar_one()

        plain_count()                                   # warm the cache for both alike
        baseline_s, _, total = timed(plain_count, args.repeat)
        count_s, first_s, matched = timed(segment_count, args.repeat)
        result = {"rows": total, "matched": matched, "count_s": round(count_s, 4),
                  "first_s": round(first_s, 4), "baseline_s": round(baseline_s, 4),
                  "ratio": round(count_s / baseline_s, 2) if baseline_s else None,
                  "database": engine.dialect.name}
    finally:
        engine.dispose()
        drop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
