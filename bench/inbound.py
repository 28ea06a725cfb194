"""Inbound mail benchmark: mixed DSNs, ARF complaints and auto-replies over SMTP into the real
receiver (`altkraft inbound`, its own process), then the pipeline that classifies them; Postfix's
smtp-source into smtp-sink with messages of the same size in the same run is the ceiling.

Builds a fresh database with subscribers, makes N distinct messages (45 % hard and soft bounces
as RFC 3464 DSNs to each person's VERP address, 15 % policy blocks, 15 % ARF complaints to the
FBL address whose original names the person only in its Return-Path, 10 % auto-replies, 15 %
non-standard Exim bounces) and sends them from `--clients` processes, one SMTP session each.
Checks that every message acknowledged with 250 is stored (accepted = stored), then runs the
pipeline in `--classifiers` processes until nothing waits and checks that each message was
applied exactly once. Prints msgs/s accepted, the p99 time from the start of a transaction to
its 250, classified/s, the ceiling and the ratio; the last line is one JSON object.

    python bench/inbound.py [--messages 100000] [--clients 4] [--classifiers 2] [--database URL]

Needs `smtp-sink` / `smtp-source` (Debian: apt-get install postfix; the daemon is not used).
--database takes an empty Postgres database (it is migrated); default: a SQLite file.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.send import free_port, start_sink, tool  # noqa: E402

BOUNCE_DOMAIN = "bounces.bench.example"
FBL = "fbl@bounces.bench.example"
SMTP_SOURCE_HEADER_BYTES = 132


def populate(engine, count: int) -> list[tuple[int, str]]:
    """`count` active subscribers: [(id, email)]."""
    from sqlalchemy import insert

    from altkraft_onprem import db
    from altkraft_onprem.audience.models import subscribers
    from altkraft_onprem.db.types import utcnow

    now = utcnow()
    people = []
    for start in range(0, count, 5000):
        rows = [{"email": f"person{i}@{('gmail.com', 'mail.ru', 'example.net')[i % 3]}",
                 "email_domain": ("gmail.com", "mail.ru", "example.net")[i % 3], "state": "active",
                 "custom": {}, "source": "bench", "created_at": now, "updated_at": now}
                for i in range(start, min(start + 5000, count))]
        with db.write(engine) as conn:
            ids = conn.execute(insert(subscribers).returning(subscribers.c.id), rows).scalars().all()
        people.extend(zip(ids, (r["email"] for r in rows), strict=True))
    return people


def _original(key: bytes, campaign: int, sid: int, email: str, n: int) -> str:
    from altkraft_onprem.delivery import verp

    return (f"Return-Path: <{verp.encode(key, BOUNCE_DOMAIN, campaign, sid)}>\r\n"
            f"From: Shop <news@shop.example>\r\nTo: <{email}>\r\nSubject: Winter sale\r\n"
            f"Message-ID: <{n}.bench@shop.example>\r\nDate: Thu, 27 Nov 2026 10:00:00 +0000\r\n")


def _report(kind: str, headers: str, parts: list[tuple[str, str]]) -> str:
    boundary = "=_b"
    out = [f"{headers}MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type={kind}; "
           f'boundary="{boundary}"\r\n\r\n']
    for content_type, body in parts:
        out.append(f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n")
    out.append(f"--{boundary}--\r\n")
    return "".join(out)


def make_messages(key: bytes, people: list[tuple[int, str]], count: int) -> list[tuple[str, bytes, str]]:
    """[(rcpt, message, expected outcome)]: distinct messages, the mix of the module docstring."""
    from altkraft_onprem.delivery import verp

    messages = []
    for n in range(count):
        sid, email = people[n % len(people)]
        campaign = 1 + n // len(people)
        rcpt = verp.encode(key, BOUNCE_DOMAIN, campaign, sid)
        slot = n % 20
        head = (f"From: MAILER-DAEMON@mx{n % 7}.example\r\nTo: <{rcpt}>\r\n"
                f"Message-ID: <{n}.report@mx.example>\r\nDate: Thu, 27 Nov 2026 10:{n % 60:02d}:00 +0000\r\n")
        status, diagnostic = {0: ("5.1.1", "550 5.1.1 User unknown"), 1: ("4.2.2", "452 4.2.2 Mailbox full"),
                              2: ("5.7.1", "554 5.7.1 blocked using zen.spamhaus.org")}[min(slot // 3, 2)] \
            if slot < 9 else ("", "")
        if slot < 9:
            fields = (f"Reporting-MTA: dns; mx.example\r\n\r\nFinal-Recipient: rfc822; {email}\r\n"
                      f"Action: failed\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n")
            body = _report("delivery-status", head + "Subject: Undelivered Mail Returned to Sender\r\n"
                           "Auto-Submitted: auto-replied\r\n", [
                               ("text/plain", "Your message could not be delivered.\r\n" + "x" * 600),
                               ("message/delivery-status", fields),
                               ("text/rfc822-headers", _original(key, campaign, sid, email, n))])
            expected = "bounce"
        elif slot < 12:
            body = _report("feedback-report", head.replace(f"To: <{rcpt}>", f"To: <{FBL}>")
                           + "Subject: complaint\r\n", [
                               ("text/plain", "This is an abuse report.\r\n"),
                               ("message/feedback-report", "Feedback-Type: abuse\r\nUser-Agent: JMRP\r\n"
                                "Version: 1\r\nOriginal-Rcpt-To: redacted@hotmail.com\r\n"),
                               ("text/rfc822-headers", _original(key, campaign, sid, email, n))])
            rcpt, expected = FBL, "complaint"
        elif slot < 14:
            body = (head + f"Subject: Automatic reply: Winter sale {n}\r\nAuto-Submitted: auto-replied\r\n\r\n"
                    "I am out of the office.\r\n" + "y" * 800 + "\r\n")
            expected = "auto_reply"
        else:
            body = (head.replace("MAILER-DAEMON@", "Mail Delivery System <Mailer-Daemon@") .replace(".example\r\nTo", ".example>\r\nTo")
                    + "Subject: Mail delivery failed: returning message to sender\r\n\r\n"
                    "This message was created automatically by mail delivery software.\r\n\r\n"
                    "A message that you sent could not be delivered to one or more of its\r\n"
                    "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
                    f"  {email}\r\n    SMTP error from remote mail server after RCPT TO:<{email}>:\r\n"
                    "    550 5.1.1 User unknown\r\n\r\n------ This is a copy of the message's headers. ------\r\n\r\n"
                    + _original(key, campaign, sid, email, n))
            expected = "bounce"
        messages.append((rcpt, body.encode("utf-8"), expected))
    return messages


def _reply(stream) -> bytes:
    while True:
        line = stream.readline()
        if not line:
            raise ConnectionError("receiver closed the connection")
        if line[3:4] != b"-":
            return line


def _client(port: int, messages: list, results) -> None:
    """One SMTP session sending its share; MAIL, RCPT and DATA go in one write. It reports
    what it got even when it fails (the parent waits for one report per client)."""
    times, acked, refused = [], 0, 0
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = sock.makefile("rb")
        _reply(stream)
        sock.sendall(b"EHLO bench.example\r\n")
        _reply(stream)
        for rcpt, data, _expected in messages:
            started = time.perf_counter()
            sock.sendall(b"MAIL FROM:<>\r\nRCPT TO:<" + rcpt.encode() + b">\r\nDATA\r\n")
            replies = [_reply(stream) for _ in range(3)]
            if not replies[2].startswith(b"354"):
                refused += 1
                continue
            payload = data.replace(b"\r\n.", b"\r\n..")
            sock.sendall(payload + (b"" if payload.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            final = _reply(stream)
            times.append(time.perf_counter() - started)
            acked += final.startswith(b"250")
            refused += not final.startswith(b"250")
        sock.sendall(b"QUIT\r\n")
        sock.close()
    finally:
        results.put((times, acked, refused))


def _collect(results: multiprocessing.Queue, processes: list) -> list:
    """One report from each process. One that died without reporting (killed by a signal)
    gives none instead of hanging the run; its exit status says what happened."""
    found = []
    while len(found) < len(processes):
        try:
            found.append(results.get(timeout=1))
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                while len(found) < len(processes):      # what the last ones put as they exited
                    try:
                        found.append(results.get(timeout=1))
                    except queue.Empty:
                        break
                break
    return found


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) a process has used so far: what a message costs, whatever
    else the machine is busy with."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _classifier(settings_values: dict, cpu=None) -> None:
    from altkraft_onprem import config, db, reactions
    from altkraft_onprem.inbound import jobs

    reactions.connect_all()     # what every process of the appliance reacts with (roll-ups, outbox)
    settings = config.load(environ={}, overrides=settings_values)
    engine = db.build_engine(settings.database_url)
    started = _cpu_seconds()
    try:
        jobs.drain(engine, settings, seconds=float("inf"))
    finally:
        # Always: the parent waits for one figure per classifier.
        if cpu is not None:
            cpu.put(_cpu_seconds() - started)
        engine.dispose()


def ceiling(port: int, count: int, sessions: int, size: int) -> float:
    body = max(size - SMTP_SOURCE_HEADER_BYTES, 1)
    started = time.perf_counter()
    subprocess.run([tool("smtp-source"), "-d", "-s", str(sessions), "-m", str(count), "-l", str(body),
                    "-f", "", "-t", FBL, f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--classifiers", type=int, default=2)
    parser.add_argument("--database", default="")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profile", action="store_true", help="profile one classifier (no others)")
    args = parser.parse_args()

    from sqlalchemy import func, select

    from altkraft_onprem import config, db
    from altkraft_onprem.db import migrate
    from altkraft_onprem.inbound.models import bounces, complaints, inbound_messages
    from altkraft_onprem.tracking.tokens import tracking_key

    work = Path(tempfile.mkdtemp(prefix="ak-bench-inbound-"))
    (work / "secret_key").write_text("b" * 48)
    port, sink_port = free_port(), free_port()
    values = {"data_dir": str(work), "database.url": args.database or f"sqlite:///{work / 'altkraft.db'}",
              "delivery.bounce_domain": BOUNCE_DOMAIN, "inbound.fbl_addresses": [FBL],
              "inbound.messages_per_ip_minute": 10_000_000, "inbound.smtp_listen": f"127.0.0.1:{port}"}
    settings = config.load(environ={}, overrides=values)
    engine = db.build_engine(settings.database_url)
    migrate.upgrade(engine)
    people = populate(engine, max(args.messages // 4, 10))
    messages = make_messages(tracking_key(settings), people, args.messages)
    size = sum(len(m[1]) for m in messages) // len(messages)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update({"ALTKRAFT_DATA_DIR": str(work), "ALTKRAFT_DATABASE__URL": values["database.url"],
                        "ALTKRAFT_DELIVERY__BOUNCE_DOMAIN": BOUNCE_DOMAIN,
                        "ALTKRAFT_INBOUND__FBL_ADDRESSES": json.dumps([FBL]),
                        "ALTKRAFT_INBOUND__MESSAGES_PER_IP_MINUTE": "10000000",
                        "ALTKRAFT_INBOUND__SMTP_LISTEN": f"127.0.0.1:{port}"})
    receiver = subprocess.Popen([sys.executable, "-m", "altkraft_onprem.cli", "inbound"], env=environment,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if receiver.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the receiver did not start: {receiver.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    results: multiprocessing.Queue = multiprocessing.Queue()
    shares = [messages[i::args.clients] for i in range(args.clients)]
    receiver_cpu = _cpu_seconds(receiver.pid)
    started = time.perf_counter()
    clients = [multiprocessing.Process(target=_client, args=(port, share, results)) for share in shares]
    for process in clients:
        process.start()
    collected = _collect(results, clients)
    intake_seconds = time.perf_counter() - started
    for process in clients:
        process.join()
    failed_clients = [p.exitcode for p in clients if p.exitcode]
    receiver_cpu = _cpu_seconds(receiver.pid) - receiver_cpu
    receiver.send_signal(signal.SIGTERM)
    receiver.wait(30)
    times = sorted(t for c in collected for t in c[0])
    acked = sum(c[1] for c in collected)
    refused = sum(c[2] for c in collected)
    with db.read(engine) as conn:
        stored = conn.execute(select(func.count()).select_from(inbound_messages)).scalar_one()

    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("_classifier(values)", globals(), {"values": values}, str(work / "prof"))
        pstats.Stats(str(work / "prof")).sort_stats(os.environ.get("AK_PROFILE_SORT", "cumulative")).print_stats(45)
    cpu: multiprocessing.Queue = multiprocessing.Queue()
    started = time.perf_counter()
    workers = [multiprocessing.Process(target=_classifier, args=(values, cpu)) for _ in range(args.classifiers)]
    for process in workers:
        process.start()
    classifier_cpu = sum(_collect(cpu, workers))
    classify_seconds = time.perf_counter() - started
    for process in workers:
        process.join()
    failed_workers = [p.exitcode for p in workers if p.exitcode]
    with db.read(engine) as conn:
        states = dict(conn.execute(select(inbound_messages.c.state, func.count())
                                   .group_by(inbound_messages.c.state)).all())
        outcomes = dict(conn.execute(select(inbound_messages.c.outcome, func.count())
                                     .group_by(inbound_messages.c.outcome)).all())
        bounce_rows = conn.execute(select(func.count()).select_from(bounces)).scalar_one()
        complaint_rows = conn.execute(select(func.count()).select_from(complaints)).scalar_one()
    engine.dispose()
    expected: dict[str, int] = {}
    for _rcpt, _data, outcome in messages:
        expected[outcome] = expected.get(outcome, 0) + 1

    sink = start_sink(sink_port)
    try:
        top = ceiling(sink_port, args.messages, args.clients, size)
    finally:
        sink.terminate()
        sink.wait()
    msgs_per_s = acked / intake_seconds
    result = {
        "messages": args.messages, "message_bytes": size, "acked": acked, "refused": refused,
        "stored": stored, "msgs_per_s": round(msgs_per_s, 1),
        "p99_ms": round(1000 * times[int(0.99 * (len(times) - 1))], 2) if times else None,
        "p50_ms": round(1000 * times[len(times) // 2], 2) if times else None,
        "classified_per_s": round(stored / classify_seconds, 1), "states": states,
        "outcomes": {str(k): v for k, v in outcomes.items()}, "expected_outcomes": expected,
        "bounce_rows": bounce_rows, "complaint_rows": complaint_rows,
        "ceiling_msgs_per_s": round(top, 1), "ratio": round(msgs_per_s / top, 3),
        "lost": acked - stored,
        # CPU per message: what the receiver and the classifiers cost whatever else runs; one
        # core's worth of such work per second is 1000 / that.
        "receiver_cpu_ms_per_msg": round(1000 * receiver_cpu / max(acked, 1), 3),
        "classifier_cpu_ms_per_msg": round(1000 * classifier_cpu / max(stored, 1), 3),
        "load_average": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
    }
    print(f"accepted {acked:,} of {args.messages:,} messages ({size:,} octets) in {intake_seconds:.1f} s: "
          f"{msgs_per_s:,.0f} msgs/s, p99 {result['p99_ms']} ms to the 250; stored {stored:,}")
    print(f"classified {stored:,} in {classify_seconds:.1f} s: {result['classified_per_s']:,.0f}/s "
          f"({args.classifiers} processes); states {states}")
    print(f"smtp-source -> smtp-sink ceiling with messages of that size: {top:,.0f} msgs/s; "
          f"ratio {result['ratio']}")
    print(f"CPU per message: receiver {result['receiver_cpu_ms_per_msg']} ms, classifiers "
          f"{result['classifier_cpu_ms_per_msg']} ms; load average {result['load_average']} on "
          f"{result['cores']} cores")
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if failed_clients:
        sys.exit(f"an SMTP client process failed (exit status {failed_clients})")
    if failed_workers:
        sys.exit(f"a classifier process failed (exit status {failed_workers})")


if __name__ == "__main__":
    main()
