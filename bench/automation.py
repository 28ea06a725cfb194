"""Workflow benchmark: N enrollments through wait -> condition -> send email -> update field.

    python bench/automation.py [--enrollments N] [--database URL] [--sessions S] [--no-sends]
                               [--delivered-listener]

N subscribers (default 1,000,000) are enrolled by hand into a published workflow
(wait PT1H -> condition city = Москва -> yes: send_email -> update_fields; no: update_fields),
the step runner takes every step (the waits are run as they would be an hour later), then
the send node's campaign is sent through the ordinary senders to Postfix's smtp-sink on
127.0.0.1, and then, for comparison, an ordinary campaign of the same message to the same
people (the Moscow segment). The baseline, measured in the same run on the same database: as
many plain INSERT + UPDATE pairs through the driver, one transaction each (what a step costs
at least), in slices between the runner's claims (both timed under the same load). The last
line printed is one JSON object: enrollments_per_s, steps_per_s, cpu_ms_per_step (the
runner's CPU), peak_rss_mb, baseline_pairs_per_s, ratio (baseline / steps per second),
baseline_cpu_ms_per_pair, cpu_ratio (CPU per step / CPU per pair: what other processes on the
machine do not change), send_msgs_per_s, campaign_msgs_per_s and send_ratio (workflow / campaign msgs/s; null with
--no-sends, which leaves the emails queued). --delivered-listener: then the same-size campaign
twice without and twice with an active `email_delivered` workflow, alternately, for
campaign_cpu_ms_per_msg, listener_campaign_cpu_ms_per_msg (this process and its senders),
listener_cpu_ratio and listener_dispatch_cpu_ms_per_msg (the dispatcher, for the outcomes
recorded). Needs `smtp-sink` (Debian: apt-get install postfix; the daemon is not used).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import send as send_bench  # noqa: E402  (bench/send.py: the sink, the key, the people)

CHUNK = 20_000


def workflow(message_id: int) -> dict:
    return {"name": "Bench flow", "trigger": {"type": "manual"}, "entry": {"reentry": "every_time"},
            "graph": {"start": "wait", "nodes": [
                {"id": "wait", "type": "wait", "config": {"duration": "PT1H"}},
                {"id": "moscow", "type": "condition", "config": {"conditions": {
                    "op": "and", "rules": [{"field": "city", "operator": "eq", "value": "Москва"}]}}},
                {"id": "mail", "type": "send_email", "config": {
                    "message_id": message_id, "from_email": "news@example.com"}},
                {"id": "mailed", "type": "update_fields", "config": {"fields": {"company": "mailed"}}},
                {"id": "skipped", "type": "update_fields", "config": {"fields": {"company": "skipped"}}}],
                "edges": [{"from": "wait", "to": "moscow"},
                          {"from": "moscow", "to": "mail", "branch": "yes"},
                          {"from": "moscow", "to": "skipped", "branch": "no"},
                          {"from": "mail", "to": "mailed"}]}}


class Baseline:
    """Plain INSERT + UPDATE pairs through the driver, one transaction each (what a step costs
    at least), in the same database. They run in slices between the runner's claims, as many
    pairs as the claim took steps, so that both are timed under the same load: on a machine
    other processes share, the load changes from one minute to the next."""

    def __init__(self, engine) -> None:
        self.raw = engine.raw_connection()
        self.cursor = self.raw.cursor()
        self.sqlite = engine.dialect.name == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.cursor.execute("CREATE TABLE bench_pairs (id INTEGER PRIMARY KEY, node TEXT, visit INTEGER)")
        self.raw.commit()
        self.pairs = 0
        self.seconds = 0.0
        self.cpu = 0.0

    def run(self, pairs: int) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(self.pairs + 1, self.pairs + pairs + 1):
            if self.sqlite:
                self.cursor.execute("BEGIN IMMEDIATE")
            self.cursor.execute(f"INSERT INTO bench_pairs (id, node, visit) VALUES ({self.mark}, 'a', 1)", (i,))
            self.cursor.execute(f"UPDATE bench_pairs SET node = 'b', visit = 2 WHERE id = {self.mark}", (i,))
            self.raw.commit()
        self.seconds += time.perf_counter() - started
        self.cpu += time.process_time() - cpu
        self.pairs += pairs

    def close(self) -> None:
        self.raw.close()


def same_size_campaign(settings, engine, actor, list_id: int, message_id: int,
                       sessions: int, segment_id: int | None = None) -> tuple[int, float, float, int]:
    """An ordinary campaign of the message to the workflow's recipients (city = Москва),
    sent the same way once its ledger is built: (sent, seconds of sending, CPU seconds of
    sending — this process and its senders —, the segment)."""
    from altkraft_onprem import db
    from altkraft_onprem.audience import segments
    from altkraft_onprem.campaigns import service as campaigns
    from altkraft_onprem.campaigns.jobs import run_campaign

    with db.write(engine) as conn:
        if segment_id is None:
            segment_id = segments.create_segment(conn, actor, "Bench Moscow", {"op": "and", "rules": [
                {"field": "city", "operator": "eq", "value": "Москва"}]})
        campaign_id = campaigns.create_campaign(
            conn, actor, name="Bench same size", message_id=message_id, list_ids=[list_id],
            segment_ids=[segment_id], from_email="news@example.com")
    with db.write(engine) as conn:          # the ledger, as the workflow's rows were queued
        campaigns.start(conn, actor, settings, campaign_id)
    engine.dispose()
    started, cpu = time.perf_counter(), send_bench._cpu_seconds()
    outcomes = run_campaign(settings, engine, campaign_id, processes=sessions)
    return (sum(o.sent for o in outcomes), time.perf_counter() - started,
            send_bench._cpu_seconds() - cpu, segment_id)


def delivered_listener(settings, engine, actor, list_id: int, message_id: int, sessions: int,
                       segment_id: int, rounds: int = 2) -> dict:
    """What an active email_delivered workflow costs the senders: the same-size campaign
    `rounds` times without and with one (alternately, so that both see the same load), CPU per
    message of each, and the dispatcher's CPU per message for the outcomes it records."""
    from altkraft_onprem import db
    from altkraft_onprem.automation import interest, outbox, triggers, workflows

    with db.write(engine) as conn:
        listener = workflows.create(conn, actor, {
            "name": "Bench delivered", "trigger": {"type": "email_delivered"},
            "entry": {"reentry": "every_time"},
            "graph": {"start": "g", "nodes": [{"id": "g", "type": "goal", "config": {"name": "d"}}],
                      "edges": []}})
    cpu = {False: 0.0, True: 0.0}
    sent = {False: 0, True: 0}
    dispatch_cpu = 0.0
    for _ in range(rounds):
        for on in (False, True):
            with db.write(engine) as conn:
                if on:
                    workflows.publish(conn, actor, listener)
                elif workflows.get(conn, listener)["state"] == "active":
                    workflows.pause(conn, actor, listener)
            interest.invalidate()
            time.sleep(interest.CACHE_SECONDS)      # the senders' cached answer runs out
            count, _, used, _ = same_size_campaign(settings, engine, actor, list_id, message_id,
                                                   sessions, segment_id)
            cpu[on] += used
            sent[on] += count
            if on:
                started = time.process_time()
                outbox.dispatch(engine, [triggers.fan_out])
                dispatch_cpu += time.process_time() - started
    off_ms, on_ms = cpu[False] * 1000 / max(sent[False], 1), cpu[True] * 1000 / max(sent[True], 1)
    return {"campaign_cpu_ms_per_msg": round(off_ms, 3),
            "listener_campaign_cpu_ms_per_msg": round(on_ms, 3),
            "listener_cpu_ratio": round(on_ms / off_ms, 2) if off_ms else None,
            "listener_dispatch_cpu_ms_per_msg": round(dispatch_cpu * 1000 / max(sent[True], 1), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrollments", type=int, default=1_000_000)
    parser.add_argument("--database", default="")
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--no-sends", dest="sends", action="store_false",
                        help="Leave the emails queued: no send run, no same-size campaign "
                        "(the step figures alone, e.g. for a quick look at a million)")
    parser.add_argument("--delivered-listener", action="store_true",
                        help="Also send the same-size campaign twice without and twice with an "
                        "active email_delivered workflow and compare CPU per message")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from altkraft_onprem import config, db, reactions
    from altkraft_onprem.access.models import system_actor
    from altkraft_onprem.audience.models import subscribers
    from altkraft_onprem.automation import runner, workflows
    from altkraft_onprem.automation.workflow_models import enrollments, steps
    from altkraft_onprem.campaigns.jobs import run_campaign
    from altkraft_onprem.db import migrate
    from altkraft_onprem.db.types import utcnow

    reactions.connect_all()          # as every process of the service has them (outbox, senders)
    work = Path(tempfile.mkdtemp(prefix="ak-bench-automation-"))
    (work / "secret_key").write_text("b" * 48)
    port = send_bench.free_port()
    key_file = send_bench.make_key(work)
    settings = config.load(environ={}, overrides={
        "data_dir": str(work), "database.url": args.database,
        "server.public_url": "https://mail.example.com",
        "smtp.relays": [{"host": "127.0.0.1", "port": port, "security": "none",
                         "max_connections": args.sessions}],
        "dkim.keys": [{"domain": "example.com", "selector": "ak1", "key_file": str(key_file)}],
        "delivery.processes": args.sessions})
    engine = db.build_engine(settings.database_url)
    migrate.upgrade(engine)
    actor = system_actor("bench")
    list_id, message_id = send_bench.populate(engine, args.enrollments, send_bench.newsletter(8))
    sink = send_bench.start_sink(port)
    try:
        with db.write(engine) as conn:
            workflow_id = workflows.create(conn, actor, workflow(message_id))
            published = workflows.publish(conn, actor, workflow_id)
            campaign_id = workflows.get_version(conn, published["version_id"])["campaigns"]["mail"]
        started = time.perf_counter()
        last, enrolled = 0, 0
        while True:         # CHUNK people at a time, never all ids in memory at once
            with db.write(engine) as conn:
                ids = list(conn.execute(select(subscribers.c.id).where(subscribers.c.id > last)
                                        .order_by(subscribers.c.id).limit(CHUNK)).scalars())
                if not ids:
                    break
                workflows.enroll(conn, actor, workflow_id, subscriber_ids=ids)
            last, enrolled = ids[-1], enrolled + len(ids)
        enroll_s = time.perf_counter() - started
        now = utcnow()
        pairs = Baseline(engine)
        steps_s = steps_cpu = 0.0
        for moment in (now, now + timedelta(hours=2)):     # into the wait; then the rest
            while True:
                with db.read(engine) as conn:
                    if conn.execute(select(enrollments.c.id).where(
                            enrollments.c.state == "active", enrollments.c.wake_at <= moment)
                            .limit(1)).first() is None:
                        break
                started, cpu = time.perf_counter(), time.process_time()
                taken = runner.run_due(engine, settings, "bench-runner", now=moment, max_batches=1)
                steps_s += time.perf_counter() - started
                steps_cpu += time.process_time() - cpu
                pairs.run(taken)
        pairs.close()
        with db.read(engine) as conn:
            taken = conn.execute(select(func.count()).select_from(steps)).scalar_one()
            done = conn.execute(select(func.count()).select_from(enrollments).where(
                enrollments.c.state == "done")).scalar_one()
        engine.dispose()
        sent = send_s = campaign_sent = campaign_s = 0
        if args.sends:
            started = time.perf_counter()
            outcomes = run_campaign(settings, engine, campaign_id, processes=args.sessions)
            send_s = time.perf_counter() - started
            sent = sum(o.sent for o in outcomes)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        listener = {}
        if args.sends:
            campaign_sent, campaign_s, _, segment_id = same_size_campaign(
                settings, engine, actor, list_id, message_id, args.sessions)
            if args.delivered_listener:
                listener = delivered_listener(settings, engine, actor, list_id, message_id,
                                              args.sessions, segment_id)
    finally:
        sink.terminate()
        sink.wait()
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)
    steps_per_s = taken / steps_s
    pairs_per_s = pairs.pairs / pairs.seconds
    print(json.dumps({
        "enrollments": enrolled, "done": done, "enrollments_per_s": round(enrolled / enroll_s, 1),
        "steps": taken, "steps_per_s": round(steps_per_s, 1),
        "cpu_ms_per_step": round(steps_cpu * 1000 / max(taken, 1), 3), "peak_rss_mb": round(peak, 1),
        "baseline_pairs_per_s": round(pairs_per_s, 1), "ratio": round(pairs_per_s / steps_per_s, 2),
        "baseline_cpu_ms_per_pair": round(pairs.cpu * 1000 / max(pairs.pairs, 1), 3),
        "cpu_ratio": round(steps_cpu / max(taken, 1) / (pairs.cpu / max(pairs.pairs, 1)), 2),
        "sent": sent, "send_msgs_per_s": round(sent / send_s, 1) if send_s else None,
        "campaign_sent": campaign_sent,
        "campaign_msgs_per_s": round(campaign_sent / campaign_s, 1) if campaign_s else None,
        "send_ratio": round((sent / send_s) / (campaign_sent / campaign_s), 2)
        if send_s and campaign_sent else None, **listener,
        "database": engine.dialect.name}))


if __name__ == "__main__":
    main()
