"""Deliverability checks benchmark: the scheduled checks of N sending domains (default 50) and
M sending IPs (default 8) against a real DNS server on 127.0.0.1 (dnslib, the tests' zone
server), run as the daily job runs them (a thread per domain and per IP), compared with the
same checks one after the other (threads=1) in the same run.

Every domain is made in the app (an RSA key each, published and signing) and gets SPF, DMARC,
MX, TLS-RPT records; a fifth of them have something wrong (no SPF, a DMARC record two times),
two are on the domain blocklist and one IP on an IP blocklist. The zone server answers each
query after --latency-ms (default 20 ms: what a recursive resolver takes for a name it has not
cached; 0 measures the loopback server alone).

    python bench/deliverability_checks.py [--domains 50] [--ips 8] [--latency-ms 20]
                                          [--database URL]

The last line printed is one JSON object: domains, ips, queries, parallel_s, sequential_s,
ratio (sequential / parallel), latency_ms, statuses (count per status), database.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from altkraft_onprem import config, db  # noqa: E402
from altkraft_onprem.access.models import system_actor  # noqa: E402
from altkraft_onprem.db import migrate  # noqa: E402
from altkraft_onprem.deliverability import checks, domains, settings_store  # noqa: E402
from altkraft_onprem.delivery import dkimkeys  # noqa: E402
from tests.installer.dns_server import DnsServer  # noqa: E402

ACTOR = system_actor("bench")
HELO = "mail.bench.example"
IP_ZONES = ["zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net", "psbl.surriel.com"]
DOMAIN_ZONES = ["dbl.spamhaus.org", "multi.surbl.org"]


class SlowZone:
    """The zone server's resolver, answering each query after `latency` seconds (dnslib's
    servers answer each query in a thread of its own, as a recursive resolver would)."""

    def __init__(self, inner, latency: float):
        self.inner, self.latency = inner, latency

    def resolve(self, request, handler):
        if self.latency:
            time.sleep(self.latency)
        return self.inner.resolve(request, handler)


def prepare_database(url: str | None) -> tuple[str, callable]:
    if url is None:
        folder = tempfile.mkdtemp(prefix="ak-dnsbench-")
        return f"sqlite:///{folder}/bench.db", lambda: shutil.rmtree(folder, ignore_errors=True)
    name = f"ak_dnsbench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db.engine_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return url.rsplit("/", 1)[0] + "/" + name, drop


def reverse(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def zone_for(made: list[dict], ips: list[str]) -> dict:
    zone: dict[str, dict] = {HELO: {"A": ips}}
    for ip in ips:
        zone[reverse(ip)] = {"PTR": [HELO]}
    spf = "v=spf1 " + " ".join(f"ip4:{ip}" for ip in ips) + " -all"
    for index, domain in enumerate(made):
        name = domain["domain"]
        for key in domain["keys"]:
            txt = dkimkeys.public_key(dkimkeys.read_key_file(key["key_file"])).txt
            zone[dkimkeys.record_name(name, key["selector"])] = {"TXT": [txt]}
        dmarc = [f"v=DMARC1; p=reject; rua=mailto:dmarc@{name}"]
        if index % 5 == 2:
            dmarc.append("v=DMARC1; p=none")
        zone[name] = {"TXT": [] if index % 5 == 1 else [spf], "MX": [(10, HELO)]}
        zone[f"_dmarc.{name}"] = {"TXT": dmarc}
        zone[f"_smtp._tls.{name}"] = {"TXT": [f"v=TLSRPTv1; rua=mailto:tls@{name}"]}
    for name in (made[0]["domain"], made[-1]["domain"]):
        zone[f"{name}.dbl.spamhaus.org"] = {"A": ["127.0.1.2"]}
    zone[f"{'.'.join(reversed(ips[0].split('.')))}.zen.spamhaus.org"] = {"A": ["127.0.0.2"]}
    return zone


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--ips", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--database", help="SQLAlchemy URL of a Postgres server database "
                        "(a scratch database is created next to it); default: a SQLite file")
    args = parser.parse_args(argv)

    server = DnsServer()
    slow = SlowZone(server.resolver, args.latency_ms / 1000)
    for one in server.servers:
        one.server.resolver = slow
    server.start()
    data_dir = Path(tempfile.mkdtemp(prefix="ak-dnsbench-data-"))
    (data_dir / "secret_key").write_text("b" * 48)
    url, drop = prepare_database(args.database)
    ips = [f"192.0.2.{10 + i}" for i in range(args.ips)]
    settings = config.load(environ={}, overrides={
        "data_dir": str(data_dir), "database.url": url,
        "smtp.relays": [{"host": "127.0.0.1", "helo": HELO}],
        "deliverability.sending_ips": ips,
        "deliverability.nameservers": [server.address],
        "deliverability.ip_blocklists": IP_ZONES, "deliverability.domain_blocklists": DOMAIN_ZONES})
    engine = db.build_engine(url)
    try:
        migrate.upgrade(engine)
        started = time.perf_counter()
        with db.write(engine) as conn:
            ids = [domains.add_domain(conn, ACTOR, settings, f"shop{i}.bench{i % 7}.example")
                   for i in range(args.domains)]
            made = [domains.get_domain(conn, i) for i in ids]
        server.serve(zone_for(made, ips))
        for domain_id in ids:
            domains.activate_published(engine, ACTOR, settings, domain_id, "rsa-sha256")
        print(f"made {args.domains} domains in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        # As the service sees them: the keys made here layered over the file's settings.
        settings = settings_store.effective(settings, engine)

        server.resolver.queries.clear()
        start = time.perf_counter()
        outcome = checks.run(engine, settings)
        parallel = time.perf_counter() - start
        queries = len(server.resolver.queries)
        start = time.perf_counter()
        baseline = checks.run(engine, settings, threads=1)
        sequential = time.perf_counter() - start

        statuses = Counter(c.status for found in outcome.domains.values() for c in found.values())
        statuses.update(x.status for found in outcome.ips.values() for x in found)
        same = ({n: {k: c.status for k, c in f.items()} for n, f in outcome.domains.items()}
                == {n: {k: c.status for k, c in f.items()} for n, f in baseline.domains.items()})
        result = {"domains": len(outcome.domains), "ips": len(outcome.ips), "queries": queries,
                  "parallel_s": round(parallel, 3), "sequential_s": round(sequential, 3),
                  "ratio": round(sequential / parallel, 2), "latency_ms": args.latency_ms,
                  "statuses": dict(sorted(statuses.items())), "same_results": same,
                  "database": engine.dialect.name}
        print(f"{result['domains']} domains + {result['ips']} IPs ({queries} DNS queries, "
              f"{args.latency_ms:g} ms each): {parallel:.2f} s in threads, {sequential:.2f} s "
              f"one after the other (x{result['ratio']})", file=sys.stderr)
        print(json.dumps(result))
    finally:
        engine.dispose()
        drop()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
