"""Import benchmark: a generated CSV of N rows (12 standard + 5 custom columns, 1% bad rows,
2% duplicates) imported through the real import job, against a plain load of the same rows
into the same table layout measured in the same run (SQLite: executemany; Postgres: COPY).

    python bench/import_1m.py [--rows N] [--database URL] [--update]

The last line printed is one JSON object: rows_per_s, wall_s, peak_rss_mb (this process, the
import's writer), reader_rss_mb (the import's forked reading process), baseline_s, ratio.
`--update` then imports the same people again with two fields changed into a second list
(every person updated and joined: the most an import records for undo) and adds
update_wall_s, update_cpu_s (the writer's CPU) and update_counts.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from altkraft_onprem import config, db, tasks
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.app import create_app
from altkraft_onprem.audience import fields, lists
from altkraft_onprem.db import migrate

STANDARD = ["email", "first_name", "last_name", "phone", "gender", "birth_date", "company",
            "city", "region", "country", "language", "timezone"]
CUSTOM = [("loyalty_points", "number"), ("signup_date", "date"), ("vip", "boolean"),
          ("plan", "text"), ("score", "number")]
FIRST = ["Anna", "Ivan", "Maria", "Pavel", "Olga", "John", "Emma", "Liam", "Sofia", "Dmitry",
         "Elena", "Sergey", "Natalia", "Alexey", "Irina", "Mikhail", "Tatiana", "Andrey"]
LAST = ["Ivanov", "Smirnova", "Kuznetsov", "Popova", "Sokolov", "Smith", "Johnson", "Brown",
        "Lebedeva", "Kozlov", "Novikova", "Morozov", "Petrova", "Volkov", "Solovyova"]
CITIES = [("Moscow", "Moscow", "RU", "ru", "Europe/Moscow"),
          ("Saint Petersburg", "Leningrad", "RU", "ru", "Europe/Moscow"),
          ("Kazan", "Tatarstan", "RU", "ru", "Europe/Moscow"),
          ("Novosibirsk", "Novosibirsk", "RU", "ru", "Asia/Novosibirsk"),
          ("Berlin", "Berlin", "DE", "de", "Europe/Berlin"),
          ("London", "England", "GB", "en", "Europe/London"),
          ("Almaty", "Almaty", "KZ", "kk", "Asia/Almaty")]
DOMAINS = [f"mail{i}.example.com" for i in range(150)] + ["gmail.com", "yandex.ru", "mail.ru"]
PLANS = ["free", "basic", "pro", "enterprise"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    emails: list[str] = []
    base = date(1950, 1, 1)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(STANDARD + [key for key, _ in CUSTOM])
        for n in range(rows):
            roll = rng.random()
            if roll < 0.02 and emails:
                email = rng.choice(emails)                      # duplicate in file
            else:
                email = f"user{n}.{rng.randrange(10**6)}@{rng.choice(DOMAINS)}"
                if len(emails) < 100_000:
                    emails.append(email)
            birth = (base + timedelta(days=rng.randrange(20000))).isoformat()
            if 0.02 <= roll < 0.025:
                email = f"broken{n}.example.com"               # bad: no @
            elif 0.025 <= roll < 0.03:
                birth = "31.02.1990"                          # bad: no such date
            city, region, country, language, tz = rng.choice(CITIES)
            out.writerow([
                email, rng.choice(FIRST), rng.choice(LAST), f"+7{rng.randrange(10**9, 10**10)}",
                rng.choice(("female", "male")), birth, f"Company {rng.randrange(5000)}", city,
                region, country, language, tz,
                rng.randrange(100000), (date(2015, 1, 1) + timedelta(days=rng.randrange(3600))).isoformat(),
                rng.choice(("yes", "no")), rng.choice(PLANS), round(rng.random() * 100, 2),
            ])


def prepare(url: str) -> None:
    engine = db.build_engine(url)
    migrate.upgrade(engine)
    with db.write(engine) as conn:
        lists.create_list(conn, system_actor(), "Bench")
        for key, kind in CUSTOM:
            fields.create_field(conn, system_actor(), key, key, kind)
    engine.dispose()


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}"


def postgres_database(admin_url: str, name: str) -> tuple[str, callable]:
    admin = create_engine(db.engine_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return url, drop


def changed_copy(csv_path: Path, out_path: Path) -> None:
    """The same rows with two fields changed (company, city): each person comes back updated."""
    with open(csv_path, newline="", encoding="utf-8") as source, \
            open(out_path, "w", newline="", encoding="utf-8") as out:
        reader, writer = csv.reader(source), csv.writer(out)
        writer.writerow(next(reader))
        for cells in reader:
            cells[6], cells[7] = cells[6] + " B", cells[7] + " New"
            writer.writerow(cells)


def run_import(folder: Path, url: str, csv_path: Path, list_name: str = "Bench") -> tuple[float, dict]:
    from altkraft_onprem.audience.importer import jobs, service

    settings = config.load(environ={}, overrides={"data_dir": str(folder / "data"), "database.url": url})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "secret_key").write_text("b" * 48)
    engine = db.build_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    with db.write(engine) as conn:
        list_id = lists.list_id_by_name(conn, list_name)
        import_id = service.create_import(conn, system_actor("bench"), filename=csv_path.name,
                                          path=csv_path, list_ids=[list_id])
    started, cpu = time.perf_counter(), time.process_time()
    jobs.run_import(import_id)           # immediate mode: the job runs here, as a worker runs it
    wall = time.perf_counter() - started
    report_cpu = time.process_time() - cpu
    with db.read(engine) as conn:
        report = service.get_import(conn, import_id)
    report["cpu_s"] = report_cpu
    engine.dispose()
    return wall, report


def baseline_rows(csv_path: Path) -> list[tuple]:
    """The same rows, unvalidated, de-duplicated (the table's UNIQUE email would refuse them)
    and without the 1% bad ones (a plain load cannot store a date that does not exist)."""
    seen = set()
    out = []
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        for cells in reader:
            if cells[0] in seen or "@" not in cells[0] or cells[5][4:5] != "-":
                continue
            seen.add(cells[0])
            custom = json.dumps({key: cells[12 + i] for i, (key, _) in enumerate(CUSTOM)})
            out.append((cells[0], cells[0].rpartition("@")[2], "active", *cells[1:12], custom,
                        "bench", "2026-01-01 00:00:00.000000", "2026-01-01 00:00:00.000000"))
    return out


COLUMNS = ("email, email_domain, state, first_name, last_name, phone, gender, birth_date, company, "
           "city, region, country, language, timezone, custom, source, created_at, updated_at")


def baseline_sqlite(url: str, rows: list[tuple]) -> float:
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    list_id = conn.execute("SELECT id FROM lists").fetchone()[0]
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO subscribers ({COLUMNS}) VALUES ({', '.join('?' * 18)})", rows)
    conn.execute("INSERT INTO subscriber_lists (list_id, subscriber_id, status, created_at, updated_at, "
                 "confirmed_at) SELECT ?, id, 'confirmed', created_at, created_at, created_at "
                 "FROM subscribers", (list_id,))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def baseline_postgres(url: str, rows: list[tuple]) -> float:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        list_id = conn.execute("SELECT id FROM lists").fetchone()[0]
        started = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy(f"COPY subscribers ({COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute("INSERT INTO subscriber_lists (list_id, subscriber_id, status, created_at, "
                        "updated_at, confirmed_at) SELECT %s, id, 'confirmed', created_at, created_at, "
                        "created_at FROM subscribers", (list_id,))
        conn.commit()
        return time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", default="",
                        help="A Postgres server URL (a scratch database is created on it); "
                             "default: SQLite files in a temporary folder.")
    parser.add_argument("--update", action="store_true",
                        help="Then import the same people again, changed, into a second list.")
    args = parser.parse_args(argv)
    update: dict = {}
    with tempfile.TemporaryDirectory(prefix="ak-bench-") as tmp:
        folder = Path(tmp)
        csv_path = folder / "subscribers.csv"
        t0 = time.perf_counter()
        generate(csv_path, args.rows)
        print(f"generated {args.rows} rows ({csv_path.stat().st_size / 2**20:.0f} MB) "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        drops = []
        if args.database.startswith("postgres"):
            tag = uuid.uuid4().hex[:8]
            url, drop = postgres_database(args.database, f"ak_bench_{tag}")
            base_url, base_drop = postgres_database(args.database, f"ak_bench_base_{tag}")
            drops += [drop, base_drop]
            kind = "postgresql"
        else:
            url, base_url = sqlite_url(folder, "import.db"), sqlite_url(folder, "baseline.db")
            kind = "sqlite"
        try:
            prepare(url)
            prepare(base_url)
            wall, report = run_import(folder, url, csv_path)
            peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            # The import's reading process (a fork: pages it did not change are shared).
            reader_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"import: {report['state']} {report['counts']} in {wall:.1f} s", file=sys.stderr)
            rows = baseline_rows(csv_path)
            baseline = (baseline_postgres if kind == "postgresql" else baseline_sqlite)(base_url, rows)
            print(f"baseline ({'COPY' if kind == 'postgresql' else 'executemany'}) of {len(rows)} rows: "
                  f"{baseline:.1f} s", file=sys.stderr)
            if args.update:
                changed = folder / "changed.csv"
                changed_copy(csv_path, changed)
                engine = db.build_engine(url)
                with db.write(engine) as conn:
                    lists.create_list(conn, system_actor(), "Bench 2")
                engine.dispose()
                update_wall, update_report = run_import(folder, url, changed, "Bench 2")
                update = {"update_wall_s": round(update_wall, 2),
                          "update_cpu_s": round(update_report["cpu_s"], 2),
                          "update_counts": update_report["counts"]}
                print(f"update: {update_report['state']} {update_report['counts']} in "
                      f"{update_wall:.1f} s", file=sys.stderr)
        finally:
            for drop in drops:
                drop()
    print(json.dumps({
        "database": kind, "rows": args.rows, "state": report["state"], "counts": report["counts"],
        "rows_per_s": round(args.rows / wall, 1), "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak_rss_mb, 1), "reader_rss_mb": round(reader_rss_mb, 1), "baseline_s": round(baseline, 2),
        "ratio": round(wall / baseline, 2), "cpu_s": round(report["cpu_s"], 2),
        "load_avg_1m": round(__import__("os").getloadavg()[0], 2), **update,
    }))


if __name__ == "__main__":
    main()
