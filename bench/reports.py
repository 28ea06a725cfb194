"""Report pages over a large generated history (a benchmark, not a test).

Generates, inside the database (recursive CTE on SQLite, generate_series on Postgres), with the
secondary indexes of the bulk tables dropped during the load and built once afterwards:
SUBSCRIBERS subscribers joined over the last year (all on one list, 5 % unsubscribed later),
CAMPAIGNS campaigns with a ledger of EVENTS/CAMPAIGNS/1 recipients each (capped at the
audience), and EVENTS tracking events (50 % opens, 20 % reading-time streams, 30 % clicks,
10 % machine-labelled) spread over each campaign's first week. Then renders every report page
through the app (signed in, templates included) and calls the report API, timing each.

    python bench/reports.py [--events 10000000] [--subscribers 1000000] [--campaigns 100]
                            [--postgres] [--keep]

Goal: every page under 2 s on SQLite and on Postgres. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text, update  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
]
HTML = "<html><body>" + "".join(f'<p><a href="https://shop.example/p{i}">Link {i}</a></p>' for i in range(5)) \
    + "</body></html>"


def seq(dialect: str, n: int) -> str:
    """A FROM clause yielding x = 1..n."""
    if dialect == "sqlite":
        return f"(WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) SELECT x FROM s)"
    return f"(SELECT generate_series(1, {n}) AS x)"


def rnd(dialect: str, m: int) -> str:
    return f"(abs(random()) % {m})" if dialect == "sqlite" else f"(floor(random() * {m})::int)"


def ts(dialect: str, base: str, seconds_expr: str) -> str:
    if dialect == "sqlite":
        return f"strftime('%Y-%m-%d %H:%M:%f000', '{base}', '+' || ({seconds_expr}) || ' seconds')"
    return f"(timestamptz '{base}+00' + ({seconds_expr}) * interval '1 second')"

# The tables the generator fills in bulk: their secondary indexes are dropped for the load and
# built once afterwards from the finished table (a sort instead of ~10 million random B-tree
# inserts per index, which on SQLite took most of the > 45 minutes a 10M load used to need).
BULK_TABLES = ("subscribers", "subscriber_lists", "campaign_deliveries", "tracking_events")


@contextmanager
def indexes_dropped(conn, tables: tuple[str, ...], timings: dict):
    """Drop `tables`' secondary indexes (not those behind primary keys or unique constraints),
    tune the connection for a bulk load, and build the indexes again on the way out."""
    names = ", ".join(f"'{t}'" for t in tables)
    if conn.dialect.name == "sqlite":
        # a page cache big enough for the index builds; no fsync for a throw-away database
        # (set on the driver's connection: SQLAlchemy would open a transaction first)
        for pragma in ("cache_size = -1000000", "synchronous = OFF", "temp_store = MEMORY"):
            conn.connection.dbapi_connection.execute(f"PRAGMA {pragma}")
        listing = ("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                   f"AND tbl_name IN ({names})")
    else:
        listing = ("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                   f"({names}) AND indexname NOT IN (SELECT conname FROM pg_constraint)")
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET maintenance_work_mem = '512MB'")
        found = conn.execute(text(listing)).all()
        for name, _ in found:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    t = time.perf_counter()
    with conn.begin():
        for _, ddl in found:
            conn.exec_driver_sql(ddl)
    timings["indexes_s"] = round(time.perf_counter() - t, 1)


def _bulk_insert(conn, d: str, args, timings: dict, first_campaign: int, list_id: int, version_id: int,
                 per_campaign: int, base: str) -> None:
    n_sub, n_camp, n_ev = args.subscribers, args.campaigns, args.events
    year = 365 * 86400
    t = time.perf_counter()
    with conn.begin():
        created = ts(d, base, f"x * {year // n_sub}")
        conn.execute(text(
            "INSERT INTO subscribers (id, email, email_domain, state, custom, source, created_at, updated_at) "
            f"SELECT x, 'u' || x || '@d' || (x % 40) || '.example', 'd' || (x % 40) || '.example', 'active', "
            f"'{{}}', CASE x % 3 WHEN 0 THEN 'form' WHEN 1 THEN 'import' ELSE 'api' END, {created}, {created} "
            f"FROM {seq(d, n_sub)} AS q"))
        left = ts(d, base, f"x * {year // n_sub} + 86400 * 20")
        conn.execute(text(
            "INSERT INTO subscriber_lists (list_id, subscriber_id, status, created_at, updated_at, unsubscribed_at) "
            f"SELECT {list_id}, x, CASE WHEN x % 20 = 0 THEN 'unsubscribed' ELSE 'confirmed' END, {created}, "
            f"{created}, CASE WHEN x % 20 = 0 THEN {left} ELSE NULL END FROM {seq(d, n_sub)} AS q"))
    timings["subscribers_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    with conn.begin():
        # campaign c (0-based) goes to ((k * 7919 + c * 1013) % N) + 1, k < per_campaign: distinct for each
        # campaign while 7919 and N are coprime
        total = per_campaign * n_camp
        conn.execute(text(
            "INSERT INTO campaign_deliveries (campaign_id, subscriber_id, variant, state, attempts, done_at) "
            f"SELECT {first_campaign} + ((x - 1) % {n_camp}), ((((x - 1) / {n_camp}) * 7919 + ((x - 1) % {n_camp}) "
            f"* 1013) % {n_sub}) + 1, 0, CASE WHEN ((x - 1) / {n_camp}) % 100 = 0 THEN 'failed' ELSE 'sent' END, 1, "
            f"{ts(d, base, f'((x - 1) % {n_camp}) * 3 * 86400 % (350 * 86400)')} FROM {seq(d, total)} AS q"))
    timings["ledger_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    # x picks the campaign ((x - 1) % n_camp); k = (x - 1) / n_camp, the event's number within
    # its campaign, picks the rest, so that every campaign gets the whole mix of kinds and agents
    agents = "CASE k % 8 " + " ".join(f"WHEN {i} THEN '{a}'" for i, a in enumerate(AGENTS)) + " END"
    kind = "CASE WHEN k % 10 < 5 THEN 'open' WHEN k % 10 < 7 THEN 'read' ELSE 'click' END"
    secs = "((k / 7) % 30)"
    read_class = (f"CASE WHEN k % 10 IN (5, 6) THEN CASE WHEN k % 8 IN (3, 4) THEN 'unmeasurable' "
                  f"WHEN {secs} < 2 THEN 'glanced' WHEN {secs} < 8 THEN 'skimmed' ELSE 'read' END END")
    step = 2_000_000
    with conn.begin():
        for offset in range(0, n_ev, step):
            chunk = min(step, n_ev - offset)
            body = (f"SELECT {ts(d, base, f'((x - 1) % {n_camp}) * 3 * 86400 % (350 * 86400) + {rnd(d, 7 * 86400)}')}, "
                    f"{kind}, {first_campaign} + ((x - 1) % {n_camp}), "
                    f"(((({rnd(d, per_campaign)}) * 7919 + ((x - 1) % {n_camp}) * 1013) % {n_sub}) + 1), {version_id}, "
                    f"CASE WHEN k % 10 >= 7 THEN (k / 10) % 5 END, k % 10 = 9 OR k % 8 = 4, "
                    f"CASE WHEN k % 8 = 4 THEN 'mpp' WHEN k % 10 = 9 THEN 'scanner' END, "
                    f"CASE WHEN k % 10 IN (5, 6) AND k % 8 NOT IN (3, 4) THEN {secs} END, {read_class}, "
                    f"{agents}, '10.0.0.1'")
            conn.execute(text(
                "INSERT INTO tracking_events (at, kind, campaign_id, subscriber_id, version_id, link_index, machine, "
                "reason, read_seconds, read_class, user_agent, ip) "
                f"{body} FROM (SELECT q.x + {offset} AS x, (q.x + {offset} - 1) / {n_camp} AS k "
                f"FROM {seq(d, chunk)} AS q) AS r"))
    timings["events_s"] = round(time.perf_counter() - t, 1)


def generate(engine, args) -> dict:
    from altkraft_onprem import db
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.audience import lists as lists_service
    from altkraft_onprem.campaigns import service as campaigns
    from altkraft_onprem.campaigns.models import campaigns as campaigns_table
    from altkraft_onprem.db.types import utcnow
    from altkraft_onprem.messages import service as messages

    d = engine.dialect.name
    per_campaign = min(args.subscribers, max(1, args.events // args.campaigns))
    now = utcnow().replace(microsecond=0)
    start = now - timedelta(days=365)
    base = start.strftime("%Y-%m-%d %H:%M:%S")
    actor = system_actor()
    timings = {}
    t = time.perf_counter()
    with db.write(engine) as conn:
        list_id = lists_service.create_list(conn, actor, "Bench list")
        message_id, _ = messages.create_message(conn, actor, "Bench", subject="Bench", html=HTML)
        version_id = messages.get_version(conn, message_id)["id"]
        camp_ids = [campaigns.create_campaign(conn, actor, name=f"Bench {c}", message_id=message_id,
                                              list_ids=[list_id], from_email="news@example.com",
                                              utm={"utm_source": "bench"}) for c in range(args.campaigns)]
        for c, cid in enumerate(camp_ids):
            conn.execute(update(campaigns_table).where(campaigns_table.c.id == cid).values(
                state="finished", version_id=version_id, started_at=start + timedelta(days=3 * c % 350)))
    first_campaign = camp_ids[0]
    with engine.connect() as bulk, indexes_dropped(bulk, BULK_TABLES, timings):
        _bulk_insert(bulk, d, args, timings, first_campaign, list_id, version_id, per_campaign, base)
    t = time.perf_counter()
    from altkraft_onprem.tracking import campaign_rollup, rollup

    with engine.begin() as conn:          # live flushes keep it; a bulk load rebuilds it once
        rollup.rebuild(conn)
    timings["cohort_rollup_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    with engine.begin() as conn:
        campaign_rollup.rebuild(conn)
    timings["campaign_rollup_s"] = round(time.perf_counter() - t, 1)
    # what autovacuum does after a bulk load on Postgres (statistics, and the visibility map that
    # lets the covering indexes answer without reading the table); SQLite: statistics
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if d == "postgresql" else "ANALYZE"))
    return {"list_id": list_id, "campaign_ids": camp_ids, "timings": timings}


def _existing(engine) -> dict:
    from altkraft_onprem import db
    from altkraft_onprem.audience.models import lists
    from altkraft_onprem.campaigns.models import campaigns

    with db.read(engine) as conn:
        list_id = conn.execute(select(lists.c.id).where(lists.c.name == "Bench list")).scalar_one()
        ids = list(conn.execute(select(campaigns.c.id).where(campaigns.c.name.like("Bench %"))
                                .order_by(campaigns.c.id)).scalars())
    return {"list_id": list_id, "campaign_ids": ids}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--postgres", action="store_true", help=f"a fresh database next to {PG_ADMIN}")
    parser.add_argument("--repeat", type=int, default=3, help="renders per page (the slowest is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the generated database (its URL is printed)")
    parser.add_argument("--reuse", metavar="URL", help="time the pages of a database kept by --keep")
    args = parser.parse_args()

    from altkraft_onprem import config, db
    from altkraft_onprem.access import service as access
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.app import create_app
    from altkraft_onprem.db import migrate

    work = Path(tempfile.mkdtemp(prefix="ak-bench-reports-"))
    (work / "secret_key").write_text("b" * 48)
    drop = None
    if args.reuse:
        url = args.reuse
    elif args.postgres:
        scratch = f"ak_bench_reports_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{scratch}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + scratch

        def drop():
            # (not `name`: the page loop below rebinds that, and this closure read it)
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    else:
        url = f"sqlite:///{work / 'altkraft.db'}"
    if args.keep:
        drop = None
        print(f"kept: --reuse {url}", file=sys.stderr)
    settings = config.load(environ={}, overrides={"data_dir": str(work), "database.url": url.replace("+psycopg", "")})
    engine = db.build_engine(settings.database_url)
    results: dict = {"database": engine.dialect.name, "events": args.events, "subscribers": args.subscribers,
                     "campaigns": args.campaigns}
    results["loadavg_before"] = os.getloadavg()[0]     # the machine is shared: read figures with it
    app = create_app(settings, engine=engine)       # fail now, not after an hour of generating
    try:
        if args.reuse:
            migrate.upgrade(engine)           # as an upgrade would: new migrations, then measure
            world = _existing(engine)
        else:
            migrate.upgrade(engine)
            with db.write(engine) as conn:
                access.sync_builtin_roles(conn)
                role = access.role_id_by_name(conn, "Administrator")
                access.create_user(conn, system_actor(), "bench@example.com", "bench password 123", role)
            world = generate(engine, args)
            results["generate"] = world["timings"]
        with db.read(engine) as conn:
            from altkraft_onprem.tracking.models import tracking_events
            results["events_stored"] = conn.execute(select(func.count()).select_from(tracking_events)).scalar()
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        marker = 'name="csrf_token" value="'
        token = page[page.index(marker) + len(marker):].split('"', 1)[0]
        client.post("/login", data={"email": "bench@example.com", "password": "bench password 123",
                                    "csrf_token": token})
        middle = world["campaign_ids"][len(world["campaign_ids"]) // 2]
        pages = {
            "reports_index": "/reports/",
            "campaign_report": f"/reports/campaigns/{middle}",
            "campaign_report_per_day": f"/reports/campaigns/{middle}?unit=day",
            "clickmap": f"/reports/campaigns/{middle}/clickmap",
            "clickmap_frame": f"/reports/campaigns/{middle}/clickmap/frame",
            "cohorts_month": "/reports/cohorts",
            "cohorts_week_clicks": "/reports/cohorts?period=week&metric=click",
            "cohorts_list": f"/reports/cohorts?list_id={world['list_id']}",
            "cohorts_list_source": f"/reports/cohorts?list_id={world['list_id']}&source=form",
            "engagement_day": "/reports/engagement",
            "engagement_month_list": f"/reports/engagement?period=month&list_id={world['list_id']}",
            "dashboard": "/",
            "campaign_csv": f"/reports/campaigns/{middle}/report.csv",
        }
        timings = {}
        for name, path in pages.items():
            worst = 0.0
            for _ in range(args.repeat):
                t = time.perf_counter()
                response = client.get(path)
                worst = max(worst, time.perf_counter() - t)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
            timings[name] = round(worst, 3)
        # baseline, same run: what any per-view scan of one campaign's events costs (count them)
        t = time.perf_counter()
        with db.read(engine) as conn:
            conn.execute(select(func.count()).select_from(tracking_events)
                         .where(tracking_events.c.campaign_id == middle)).scalar()
        results["baseline_count_one_campaign_events_s"] = round(time.perf_counter() - t, 3)
        results["page_seconds"] = timings
        results["ratio_slowest_page_to_baseline"] = round(max(timings.values()) / max(
            results["baseline_count_one_campaign_events_s"], 1e-6), 2)
        results["slowest_page"] = max(timings, key=timings.get)
        results["all_under_2s"] = all(v < 2.0 for v in timings.values())
    finally:
        engine.dispose()
        if drop:
            drop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
