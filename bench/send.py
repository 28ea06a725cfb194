"""Campaign send benchmark: our sender vs. Postfix's smtp-source into the same smtp-sink.

Builds a fresh database with N subscribers on one list and the shared newsletter fixture
(personalised, click- and open-tracked, DKIM-signed with RSA-2048; 8 of its 16 products by
default, which makes messages of about 30 KB as the issue specifies — `--products 16` for the
whole newsletter, ~46 KB), starts the campaign "now"
and lets the sender (forked sender processes, one SMTP session each) push it into Postfix's
`smtp-sink` on 127.0.0.1. In the same run `smtp-source -d` pushes N messages of the same size
(the mean size of the messages we sent, as they went over the wire) over as many sessions into
the same sink: the ceiling. Prints msgs/s for both, the ratio,
where the time goes per stage (summed over the sender processes), the time from "start" to
the first accepted message and peak RSS; the last line is one JSON object.

    python bench/send.py [--messages N] [--database URL] [--sessions 4] [--products 8]
                         [--local-zones 30]

--local-zones Z: the subscribers are spread over Z time zones and, in the same run, after the
ordinary campaign, a local-time campaign (`send_at_local`) of the same audience is sent: its
ledger built with each row's zone and moment, then the zones made due one after another in
the order they would come (an UPDATE between the passes, outside the measured CPU: in
production the clock does it) and a send run per zone. Prints both CPU figures per message
and their ratio (the issue's goal: < 1.05 with 100,000 recipients in 30 zones).

Needs `smtp-sink` / `smtp-source` (Debian: apt-get install postfix; the daemon is not used).
--database takes an empty Postgres database (it is migrated); default: a SQLite file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIXTURE = Path(os.environ.get("AK_FIXTURE", ROOT / "tests" / "fixtures" / "newsletter.html"))
CITIES = ["Москва", "Berlin", "Paris", "Казань", "Lisbon", "Рига", "Oslo", "Tbilisi"]
# 30 zones with 30 different offsets from UTC (-10:00 … +12:00, the half and quarter hours too).
ZONES = ["Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Denver",
         "America/Chicago", "America/New_York", "America/Halifax", "America/St_Johns",
         "America/Sao_Paulo", "Atlantic/South_Georgia", "Atlantic/Azores", "Europe/London",
         "Europe/Berlin", "Europe/Helsinki", "Europe/Moscow", "Asia/Tehran", "Asia/Dubai",
         "Asia/Kabul", "Asia/Karachi", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Dhaka",
         "Asia/Yangon", "Asia/Bangkok", "Asia/Shanghai", "Asia/Tokyo", "Australia/Adelaide",
         "Australia/Sydney", "Pacific/Noumea", "Pacific/Auckland"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not found:
        sys.exit(f"{name} not found: apt-get install -y postfix (the daemon is not needed)")
    return found


def start_sink(port: int) -> subprocess.Popen:
    args = [tool("smtp-sink")]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    process = subprocess.Popen(args + [f"127.0.0.1:{port}", "1024"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    sys.exit("smtp-sink did not start")


def make_key(directory: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


_PRODUCT_ROW = re.compile(r'<tr>\s*<td><div class="card">.*?</tr>\s*', re.S)


def newsletter(products: int) -> str:
    """The fixture with its first `products` product cards (two per grid row)."""
    html = FIXTURE.read_text()
    rows = list(_PRODUCT_ROW.finditer(html))
    for row in reversed(rows[(products + 1) // 2:]):
        html = html[:row.start()] + html[row.end():]
    return html


def populate(engine, count: int, html: str, zones: int = 0) -> tuple[int, int]:
    """A list with `count` confirmed subscribers and the newsletter message: (list, message).
    `zones`: their `timezone` field cycles through that many of ZONES."""
    from sqlalchemy import insert

    from altkraft_onprem import db
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.audience import lists
    from altkraft_onprem.audience.models import subscriber_lists, subscribers
    from altkraft_onprem.db.types import utcnow
    from altkraft_onprem.messages import service as messages

    actor = system_actor("bench")
    with db.write(engine) as conn:
        list_id = lists.create_list(conn, actor, "Bench newsletter")
        message_id, _ = messages.create_message(
            conn, actor, "Newsletter", subject="{{ subscriber.first_name }}, winter sale: up to 40% off",
            preheader="Only this week", html=html)
    now = utcnow()
    chunk = 5000
    for start in range(0, count, chunk):
        rows = [{"email": f"user{i}@example{i % 50}.net", "email_domain": f"example{i % 50}.net",
                 "state": "active", "first_name": f"Имя{i}", "last_name": "Test",
                 "city": CITIES[i % len(CITIES)], "language": "ru" if i % 2 else "en",
                 "custom": {"loyalty_tier": "Gold" if i % 3 == 0 else "Silver", "bonus_points": i % 900},
                 "timezone": ZONES[i % zones] if zones else None,
                 "source": "bench", "created_at": now, "updated_at": now}
                for i in range(start, min(start + chunk, count))]
        with db.write(engine) as conn:
            ids = conn.execute(insert(subscribers).returning(subscribers.c.id), rows).scalars().all()
            conn.execute(insert(subscriber_lists), [
                {"list_id": list_id, "subscriber_id": sid, "status": "confirmed", "created_at": now,
                 "updated_at": now, "confirmed_at": now} for sid in ids])
    if engine.dialect.name == "postgresql":
        # What autovacuum does after a big import: the audience query needs row estimates.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return list_id, message_id


def _cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the senders)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# smtp-source -l sets the body size; its own From/To/Date/Message-Id headers add this much
# (measured: -l 45000 puts 45,132 octets between DATA and the final dot).
SMTP_SOURCE_HEADER_BYTES = 132


def ceiling(port: int, count: int, sessions: int, size: int) -> float:
    """smtp-source's msgs/s with messages of `size` octets (headers included)."""
    body = max(size - SMTP_SOURCE_HEADER_BYTES, 1)
    started = time.perf_counter()
    subprocess.run([tool("smtp-source"), "-d", "-s", str(sessions), "-m", str(count), "-l", str(body),
                    "-f", "news@example.com", "-t", "user@example.net", f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL)
    return count / (time.perf_counter() - started)


def send_local(engine, settings, list_id: int, message_id: int, sessions: int) -> dict:
    """The local-time campaign of --local-zones: CPU of its start (the ledger with zones) and
    of one send run per zone, each zone made due in turn between the runs (not measured)."""
    from sqlalchemy import func, select, update

    from altkraft_onprem import db
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.campaigns import localtime
    from altkraft_onprem.campaigns import service as campaigns
    from altkraft_onprem.campaigns.jobs import run_campaign
    from altkraft_onprem.campaigns.models import deliveries

    actor = system_actor("bench")
    with db.write(engine) as conn:
        campaign_id = campaigns.create_campaign(
            conn, actor, name="Bench local", message_id=message_id, list_ids=[list_id],
            from_email="news@example.com", from_name="Магазин",
            utm={"utm_source": "altkraft", "utm_medium": "email", "utm_campaign": "bench"},
            send_at_local={"time": "10:00", "quiet_hours": None})
    engine.dispose()
    cpu = 0.0
    before = _cpu_seconds()
    started = time.perf_counter()
    with db.write(engine) as conn:
        campaigns.start(conn, actor, settings, campaign_id)
    ledger_built = time.perf_counter() - started
    cpu += _cpu_seconds() - before
    with db.read(engine) as conn:
        order = [z for z, in conn.execute(select(deliveries.c.zone).where(
            deliveries.c.campaign_id == campaign_id).group_by(deliveries.c.zone)
            .order_by(func.min(deliveries.c.next_attempt_at)))]
    outcomes, runs = [], 0
    for zone in order:
        with db.write(engine) as conn:          # the clock reaches this zone's moment
            conn.execute(update(deliveries).where(
                deliveries.c.campaign_id == campaign_id, deliveries.c.zone == zone,
                deliveries.c.state == "queued").values(next_attempt_at=campaigns.utcnow()))
        before = _cpu_seconds()
        outcomes += run_campaign(settings, engine, campaign_id, processes=sessions)
        cpu += _cpu_seconds() - before
        runs += 1
    with db.read(engine) as conn:
        progress = campaigns.progress(conn, campaign_id)
        campaign = campaigns.get_campaign(conn, campaign_id)
        state = campaign["state"]
    # The run above has no quiet hours (each zone is made due at once, whatever the hour):
    # what a claim pays for the default ones, measured on their own.
    quiet = {**campaign, "send_at_local": {**campaign["send_at_local"],
                                           "quiet_hours": localtime.DEFAULT_QUIET_HOURS}}
    now, rounds = campaigns.utcnow(), 2000
    started = time.perf_counter()
    for _ in range(rounds):
        localtime.quiet_zones(quiet, now)
    per_claim = (time.perf_counter() - started) / rounds
    return {"zones": len(order), "send_runs": runs, "sent": progress["sent"],
            "quiet_hours_check_us_per_claim": round(per_claim * 1e6, 1),
            "quiet_hours_check_us_per_msg": round(per_claim * 1e6 / settings["delivery.batch_size"], 3),
            "failed": progress["failed"], "in_doubt": progress["in_doubt"], "state": state,
            "ledger_build_s": round(ledger_built, 2),
            "cpu_ms_per_msg": round(cpu / max(progress["sent"], 1) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--database", default="")
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--products", type=int, default=8,
                        help="product cards of the newsletter's 16 to keep (8: ~30 KB messages)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--local-zones", type=int, default=0, choices=range(0, len(ZONES) + 1),
                        metavar=f"0..{len(ZONES)}",
                        help="also send a local-time campaign over this many time zones and "
                             "compare its CPU per message (same run)")
    args = parser.parse_args()

    from altkraft_onprem import config, db, extensions
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.campaigns import service as campaigns
    from altkraft_onprem.campaigns.jobs import run_campaign
    from altkraft_onprem.campaigns.models import deliveries
    from altkraft_onprem.db import migrate
    from altkraft_onprem.sending import fanout

    # No app here: wire the sender processes as reactions.connect_all does (and nothing else,
    # so that no reaction's work is measured).
    extensions.CAMPAIGN_SENDERS.provide(fanout.run)

    work = Path(tempfile.mkdtemp(prefix="ak-bench-send-"))
    (work / "secret_key").write_text("b" * 48)
    port = free_port()
    key_file = make_key(work)
    settings = config.load(environ={}, overrides={
        "data_dir": str(work), "database.url": args.database,
        "server.public_url": "https://mail.example.com",
        "smtp.relays": [{"host": "127.0.0.1", "port": port, "security": "none",
                         "max_connections": args.sessions}],
        "dkim.keys": [{"domain": "example.com", "selector": "ak1", "key_file": str(key_file)}],
        "delivery.processes": args.sessions})
    engine = db.build_engine(settings.database_url)
    migrate.upgrade(engine)
    t0 = time.perf_counter()
    list_id, message_id = populate(engine, args.messages, newsletter(args.products),
                                   zones=args.local_zones)
    print(f"setup: {args.messages} subscribers in {time.perf_counter() - t0:.1f}s", flush=True)

    sink = start_sink(port)
    try:
        actor = system_actor("bench")
        with db.write(engine) as conn:
            campaign_id = campaigns.create_campaign(
                conn, actor, name="Bench", message_id=message_id, list_ids=[list_id],
                from_email="news@example.com", from_name="Магазин",
                utm={"utm_source": "altkraft", "utm_medium": "email", "utm_campaign": "bench"})
        engine.dispose()
        cpu_before = _cpu_seconds()
        started_at = campaigns.utcnow()
        started = time.perf_counter()
        with db.write(engine) as conn:
            campaigns.start(conn, actor, settings, campaign_id)
        ledger_built = time.perf_counter() - started
        outcomes = run_campaign(settings, engine, campaign_id, processes=args.sessions)
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        from sqlalchemy import func, select
        with db.read(engine) as conn:
            first = conn.execute(select(func.min(deliveries.c.done_at)).where(
                deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sent")).scalar()
            progress = campaigns.progress(conn, campaign_id)
            state = campaigns.get_campaign(conn, campaign_id)["state"]
            sample = conn.execute(select(func.length(deliveries.c.message_id))).scalar()
        if isinstance(first, str):
            from datetime import datetime
            first = datetime.fromisoformat(first)
        first_latency = (first.replace(tzinfo=started_at.tzinfo) - started_at) / timedelta(seconds=1) \
            if first else None
        sent = progress["sent"]
        ours = sent / elapsed
        peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

        size = round(sum(o.sent_bytes for o in outcomes) / max(sent, 1))
        local = send_local(engine, settings, list_id, message_id, args.sessions) \
            if args.local_zones else None
        top = ceiling(port, args.messages, args.sessions, size)
    finally:
        sink.terminate()
        sink.wait()
    stages = {}
    for outcome in outcomes:
        for name, seconds in outcome.stages.items():
            stages[name] = stages.get(name, 0.0) + seconds
    result = {
        "messages": args.messages, "message_bytes": size, "sent": sent, "failed": progress["failed"],
        "in_doubt": progress["in_doubt"], "state": state,
        "database": "postgres" if settings.database_url.startswith("postgres") else "sqlite",
        "sessions": args.sessions, "seconds": round(elapsed, 2),
        "msgs_per_s": round(ours, 1), "ceiling_msgs_per_s": round(top, 1),
        "ratio": round(ours / top, 3), "first_message_s": round(first_latency, 3) if first_latency else None,
        "ledger_build_s": round(ledger_built, 2),
        "peak_rss_mb": round(max(peak_self, peak_children), 1),
        "peak_rss_coordinator_mb": round(peak_self, 1), "peak_rss_sender_mb": round(peak_children, 1),
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
        "cpu_ms_per_msg": round(cpu / max(sent, 1) * 1000, 3),
        "cpu_bound_msgs_per_s_on_this_host": round(os.cpu_count() * max(sent, 1) / cpu, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "message_id_length": sample,
    }
    if local is not None:
        local["baseline_cpu_ms_per_msg"] = result["cpu_ms_per_msg"]
        local["cpu_ratio"] = round(local["cpu_ms_per_msg"] / result["cpu_ms_per_msg"], 3)
        result["local_time"] = local
    print(f"ours: {ours:.0f} msgs/s ({sent} sent in {elapsed:.1f}s, {args.sessions} sessions, "
          f"{size:,} octets each on average); smtp-source ceiling with messages of that size: "
          f"{top:.0f} msgs/s; ratio {ours / top:.2f}")
    print("stage seconds (summed over senders): " +
          ", ".join(f"{k} {v:.1f}" for k, v in result["stage_seconds"].items()))
    print(f"CPU {result['cpu_ms_per_msg']} ms per message (all our processes): at most "
          f"{result['cpu_bound_msgs_per_s_on_this_host']} msgs/s on {os.cpu_count()} idle cores; "
          f"load average during the run {result['load_average_1m']}")
    print(f"first message accepted {result['first_message_s']}s after start; "
          f"peak RSS {result['peak_rss_mb']} MB")
    if local is not None:
        print(f"local time, {local['zones']} zones ({local['send_runs']} send runs, "
              f"{local['sent']} sent): CPU {local['cpu_ms_per_msg']} ms per message against "
              f"{result['cpu_ms_per_msg']} ms for the ordinary campaign: ratio "
              f"{local['cpu_ratio']}; ledger built in {local['ledger_build_s']}s "
              f"(ordinary: {result['ledger_build_s']}s); the quiet-hours check of a claim "
              f"{local['quiet_hours_check_us_per_claim']} µs "
              f"({local['quiet_hours_check_us_per_msg']} µs per message)")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
