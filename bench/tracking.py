"""Tracking benchmark against the real service (`altkraft run`, gunicorn as configured).

1. wrk against the open pixel (/t/o/: the fast path, the open of mail sent before the tracking
   image), the click redirect and, in the same run, a static file served by
   the same gunicorn: requests/s, p50/p99, and the ratio to the static file. Afterwards the
   service is stopped gracefully and the stored events are counted: stored == answered (wrk
   counts the responses it read; responses still in flight when wrk stops are answered and
   stored too, so stored may exceed wrk's count by at most the number of connections).

   Connections (--connections, default 16 then 64): behind a reverse proxy the service sees the
   proxy's pool of kept-alive upstream connections, and the number in use at once is the rate
   times the service time (~3 at 3,000 requests/s answered in ~1 ms). wrk keeps every
   connection busy all the time, so 16 already overstates that; 64 (16 per core for each of
   wrk and the service) is measured too, where latency is mostly wrk's own queue (Little's
   law: 64 / 3,000 per s = 21 ms on average). wrk runs one thread (enough for these rates) and
   competes for the same two cores: its CPU time and the service's are printed per request,
   for the static file as well. Requests carry a mail client's User-Agent, as real ones do.
   wrk runs flat out (the service at 100 % CPU); the goal's rate (--rate, 3,000/s) is also
   measured paced, for the latency while serving that rate.
2. N held tracking images (/t/i/, default 2,000, held by a separate asyncio process) while wrk
   measures a UI page (/login, rendered by Flask + Jinja): p99 with and without the streams.
3. While each wrk run of the pixel and the redirect goes on, an API client changes one
   subscriber (PATCH /api/v1/subscribers/{id}, a write transaction with an audit record) every
   API_WRITE_PAUSE seconds: p50/p99/max and the statuses other than 200 ("api_write" per run,
   "api_write_idle" with nothing else running). The event flush shares the database's write
   lock with it (SQLite has one writer at a time): this is what a person editing in the UI
   waits while tracking load goes on.

    python bench/tracking.py [--streams 2000] [--duration 10] [--database URL]

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(data_dir: Path, database: str | None, port: int, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    env.update({"ALTKRAFT_DATA_DIR": str(data_dir), "ALTKRAFT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
                "ALTKRAFT_LOG_LEVEL": "warning"})
    if database:
        env["ALTKRAFT_DATABASE__URL"] = database
    env.update(extra)
    return env


def start(env: dict, port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen([PY, "-m", "altkraft_onprem.cli", "run", "--migrate", "--no-consumer",
                                "--bind", f"127.0.0.1:{port}"], env=env, stdout=open(log, "ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"service did not start:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(90)


LUA = textwrap.dedent("""
    local paths = {}
    for line in io.lines("%s") do paths[#paths + 1] = line end
    local counter = 0
    local headers = {["User-Agent"] = "%s"}
    request = function()
      counter = counter + 1
      return wrk.format("GET", paths[(counter %% #paths) + 1], headers)
    end
""")
# Paced: each connection waits before its next request, so that the connections together ask
# for about --rate requests/s (wrk's delay(); the achieved rate is printed).
PACED = 'delay = function() return %d end\n'

API_WRITE_PAUSE = 0.05

MAIL_CLIENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"


def wrk(url: str, seconds: int, connections: int, threads: int = 1, script: str | None = None,
        service_pid: int | None = None) -> dict:
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
               "--timeout", "10s"]
    if script:
        command += ["-s", script]
    service_before = _cpu_seconds(service_pid)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    service_cpu = _cpu_seconds(service_pid) - service_before
    try:
        result = parse_wrk(out)
    except (AttributeError, ValueError):
        print(out, file=sys.stderr)
        return {"rps": 0.0, "requests": 0, "p50_ms": None, "p99_ms": None, "unparsed": True}
    result["connections"] = connections
    if result["requests"]:
        wrk_cpu = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
        result["wrk_cpu_us_per_request"] = round(wrk_cpu / result["requests"] * 1e6)
        if service_pid:
            result["service_cpu_us_per_request"] = round(service_cpu / result["requests"] * 1e6)
    return result


class ApiWriter:
    """PATCHes one subscriber again and again in a thread while a run goes on."""

    def __init__(self, base: str, token: str, subscriber_id: int):
        self.url = f"{base}/api/v1/subscribers/{subscriber_id}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def during(self, run) -> tuple[object, dict]:
        """(what `run()` returned, the writes' figures while it ran)."""
        times, statuses, done = [], {}, threading.Event()

        def write() -> None:
            count = 0
            while not done.is_set():
                count += 1
                started = time.perf_counter()
                try:
                    status = self.session.patch(self.url, json={"first_name": f"Probe {count}"},
                                                timeout=30).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                times.append(time.perf_counter() - started)
                if status != 200:
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                done.wait(API_WRITE_PAUSE)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        try:
            result = run()
        finally:
            done.set()
            thread.join(60)
        return result, _latencies(times, statuses)


def _latencies(times: list[float], statuses: dict) -> dict:
    ordered = sorted(times)
    if not ordered:
        return {"writes": 0}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)
    return {"writes": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 2), "not_200": statuses}


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of the service's worker processes (children of the master)."""
    if pid is None:
        return 0.0
    total = 0.0
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue                     # a process that just ended
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return round(float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit], 3)


def parse_wrk(out: str) -> dict:
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "requests": int(re.search(r"(\d+) requests in", out).group(1)),
              # the distribution's own lines: "94.50%" in the stdev column is not the p50
              "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
              "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["socket_errors"] = sum(int(x) for x in errors.groups()) if errors else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx_3xx"] = int(non2xx.group(1)) if non2xx else 0
    return result


HOLDER = textwrap.dedent("""
    import asyncio, sys, time
    host, port, path_file, ready_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    paths = open(path_file).read().split()
    async def hold(path, held):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\\r\\nHost: {host}\\r\\nUser-Agent: bench-reader\\r\\n\\r\\n".encode())
        await writer.drain()
        data = b""
        while b"GIF89a" not in data:
            chunk = await reader.read(4096)
            if not chunk:
                return
            data += chunk
        held.append(writer)
    async def main():
        held = []
        sem = asyncio.Semaphore(200)
        async def one(p):
            async with sem:
                try:
                    await asyncio.wait_for(hold(p, held), 60)
                except Exception as exc:
                    print("holder:", type(exc).__name__, exc, file=sys.stderr)
        started = time.monotonic()
        await asyncio.gather(*(one(p) for p in paths))
        open(ready_file, "w").write(f"{len(held)} {time.monotonic() - started:.2f}")
        await asyncio.sleep(3600)
    asyncio.run(main())
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="16,64",
                        help="comma-separated; the first is the headline figure")
    parser.add_argument("--rate", type=int, default=3000, help="requests/s of the paced runs")
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary data dir")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="server.threads (default: the setting's)")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]

    from altkraft_onprem import config
    from altkraft_onprem.tracking import tokens

    work = Path(tempfile.mkdtemp(prefix="ak-bench-tracking-"))
    port = free_port()
    extra = {"ALTKRAFT_SERVER__WORKERS": str(args.workers),
             "ALTKRAFT_TRACKING__READ_CAP_SECONDS": "600"}
    if args.threads:
        extra["ALTKRAFT_SERVER__THREADS"] = str(args.threads)
    env = service_env(work, args.database, port, extra)
    log = work / "service.log"
    process = start(env, port, log)
    settings = config.load(environ=env)
    base = f"http://127.0.0.1:{port}"
    campaign = int(time.time()) % 100000
    results: dict = {"workers": args.workers, "threads": settings["server.threads"],
                     "database": "postgres" if args.database else "sqlite"}
    results["loadavg_before"] = os.getloadavg()[0]     # the machine is shared: read figures with it

    def path_file(name: str, paths: list[str]) -> str:
        target = work / name
        target.write_text("\n".join(paths) + "\n")
        return str(target)

    opens = [tokens.open_url(settings, campaign, s, 1)[len(base):] for s in range(50000)]
    open_script = work / "opens.lua"
    open_script.write_text(LUA % (path_file("opens.txt", opens), MAIL_CLIENT))
    clicks_ok = _click_setup(settings, env, campaign, base)
    writer = ApiWriter(base, *_api_setup(settings))
    probe_events = 1 if clicks_ok else 0
    click_script = None
    if clicks_ok:
        clicks = [tokens.click_url(settings, campaign, s, clicks_ok, 0)[len(base):] for s in range(50000)]
        click_script = work / "clicks.lua"
        click_script.write_text(LUA % (path_file("clicks.txt", clicks), MAIL_CLIENT))

    try:
        wrk(base + "/static/app.css", 2, connections[0])                   # warm up
        answered = probe_events
        pid = process.pid
        _, results["api_write_idle"] = writer.during(lambda: time.sleep(min(args.duration, 5)))

        def loaded(kind: str, url: str, n: int, script) -> dict:
            """A wrk run with the API writer beside it."""
            run, writes = writer.during(lambda: wrk(url, args.duration, n, script=str(script),
                                                    service_pid=pid))
            run["api_write"] = writes
            return run

        def drained(label: str) -> None:
            """Wait until the events answered so far are written: a backlog left by one run
            (the buffer takes bursts above the write rate) would throttle the next."""
            results.setdefault("drain_seconds", {})[label] = _wait_for_events(settings, campaign, answered)

        for n in connections:
            # headline figures at the first connection count, the others beside them
            runs = {"static": wrk(base + "/static/app.css", args.duration, n, service_pid=pid),
                    # the floor of any Flask route in this setup (no template, no database)
                    "healthz": wrk(base + "/healthz", args.duration, n, service_pid=pid),
                    "open": loaded("open", base, n, open_script)}
            answered += runs["open"]["requests"]
            if click_script:
                drained(f"after_open_{n}")
                runs["click"] = loaded("click", base, n, click_script)
                answered += runs["click"]["requests"]
            drained(f"after_click_{n}")
            for kind in ("open", "click"):
                if kind in runs and runs["static"]["rps"]:
                    runs[kind]["ratio_to_static"] = round(runs[kind]["rps"] / runs["static"]["rps"], 3)
            if n == connections[0]:
                results.update(runs)
            else:
                results[f"connections_{n}"] = runs
        # the goal's own question: p50/p99 while serving --rate requests/s (not flat out)
        # (whole milliseconds, and each response and wrk's timer take a little too: 2 ms less
        # than the exact pause, so that the achieved rate is at least --rate; printed)
        pace = max(1, int(connections[0] * 1000 / args.rate) - 2)
        for kind, script in (("open", open_script), ("click", click_script)):
            if script:
                paced = work / f"paced-{kind}.lua"
                paced.write_text(script.read_text() + PACED % pace)
                run = results[f"{kind}_at_rate"] = loaded(kind, base, connections[0], paced)
                answered += run["requests"]
                drained(f"after_{kind}_at_rate")
        results["ui_p99_ms_idle"] = wrk(base + "/login", args.duration, 4, threads=1)["p99_ms"]

        # held reading-time streams
        # the tracking image of a message on screen (/t/i/: an open, then the held read stream)
        reads = [tokens.image_url(settings, campaign + 1, s, 1)[len(base):] for s in range(args.streams)]
        ready = work / "ready"
        holder = subprocess.Popen([PY, "-c", HOLDER, "127.0.0.1", str(port), path_file("reads.txt", reads),
                                   str(ready)], start_new_session=True)
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        held, took = ready.read_text().split() if ready.exists() else ("0", "-1")
        results["streams_held"] = int(held)
        results["streams_open_seconds"] = float(took)
        ui = wrk(base + "/login", args.duration, 4, threads=1)
        results["ui_with_streams"] = ui
        results["ui_p99_ms_with_streams"] = ui["p99_ms"]
        rss = _rss_mb(process.pid)
        results["service_rss_mb_with_streams"] = rss
        holder.send_signal(signal.SIGTERM)
        holder.wait(10)
    finally:
        code = stop(process)
    results["stop_exit_code"] = code
    stored = _count_events(settings, campaign)
    results["events_stored"] = stored
    results["requests_answered_by_wrk"] = answered
    results["in_flight_allowance"] = (sum(connections) + connections[0]) * (2 if click_script else 1)
    results["events_lost"] = max(0, answered - stored)
    results["api_write_p99_ms"] = max((r["api_write"].get("p99_ms") or 0) for r in _loaded_runs(results))
    results["api_write_not_200"] = sum(sum(r["api_write"].get("not_200", {}).values())
                                       for r in _loaded_runs(results))
    results["goal"] = {"rps": 3000, "p99_ms": 50, "ui_p99_ms_with_streams": 200}
    shutil.rmtree(work, ignore_errors=True)
    results["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(results))


def _loaded_runs(results: dict) -> list[dict]:
    """Every wrk run that had the API writer beside it."""
    found = []
    for value in results.values():
        if isinstance(value, dict):
            if "api_write" in value:
                found.append(value)
            found.extend(v for v in value.values() if isinstance(v, dict) and "api_write" in v)
    return found


def _rss_mb(pid: int) -> float:
    """RSS of the service: master and all its workers."""
    total = 0
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    for value in out.split() + subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True,
                                               text=True).stdout.split():
        total += int(value)
    return round(total / 1024, 1)


def _wait_for_events(settings, campaign: int, answered: int, timeout: float = 180) -> float:
    """Seconds until at least `answered` events of the campaign are stored (the time the
    service needed to write its backlog), or until `timeout`."""
    started = time.monotonic()
    while _count_events(settings, campaign) < answered and time.monotonic() - started < timeout:
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def _count_events(settings, campaign: int) -> int:
    from sqlalchemy import func, select

    from altkraft_onprem import db
    from altkraft_onprem.tracking.models import tracking_events

    engine = db.build_engine(settings.database_url)
    with db.read(engine) as conn:
        count = conn.execute(select(func.count()).select_from(tracking_events)
                             .where(tracking_events.c.campaign_id.in_([campaign]))).scalar()
    engine.dispose()
    return count


def _api_setup(settings) -> tuple[str, int]:
    """An administrator's API token and a subscriber for the API writer: (token, id)."""
    from altkraft_onprem import db
    from altkraft_onprem.access import service as access
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.audience import subscribers

    engine = db.build_engine(settings.database_url)
    actor = system_actor("bench")
    with db.write(engine) as conn:
        user_id = access.create_user(conn, actor, f"bench-{os.getpid()}@example.com",
                                     "bench password 123", access.role_id_by_name(conn, "Administrator"))
        _, token = access.create_token(conn, actor, user_id, "bench")
        subscriber_id = subscribers.create_subscriber(
            conn, actor, {"email": f"probe-{os.getpid()}-{time.time_ns()}@example.com"})
    engine.dispose()
    return token, subscriber_id


def _click_setup(settings, env, campaign: int, base: str) -> int | None:
    """A message version with one link, for click redirects; None if messages are not built."""
    try:
        from altkraft_onprem.messages.models import message_versions, messages  # noqa: F401
        from altkraft_onprem.messages.render import compile_version  # noqa: F401
    except ImportError:
        return None
    from altkraft_onprem import db
    from altkraft_onprem.db.types import utcnow

    engine = db.build_engine(settings.database_url)
    now = utcnow()
    with db.write(engine) as conn:
        message_id = conn.execute(messages.insert().values(
            name="bench", current_version=1, created_at=now, updated_at=now, created_by="bench")).inserted_primary_key[0]
        version_id = conn.execute(message_versions.insert().values(
            message_id=message_id, version=1, subject="Bench", preheader="",
            html='<p><a href="https://example.com/landing?x=1">Go</a></p>', text="", text_follows_html=True,
            created_at=now, created_by="bench", summary="")).inserted_primary_key[0]
    engine.dispose()
    probe = requests.get(base + tokens_path(settings, campaign, version_id), allow_redirects=False, timeout=5)
    if probe.status_code != 302:
        print(f"click probe answered {probe.status_code}; skipping clicks", file=sys.stderr)
        return None
    return version_id


def tokens_path(settings, campaign: int, version_id: int) -> str:
    from altkraft_onprem.tracking import tokens

    url = tokens.click_url(settings, campaign, 999999, version_id, 0)
    return url[url.index("/t/"):]


if __name__ == "__main__":
    main()
