"""A small run of bench/deliverability_checks.py: domains made in the app, their records in a
real DNS server on 127.0.0.1, the scheduled checks in threads and one after the other, and its
JSON line (the figures are for bench/, only their presence is asserted)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.delivery.test_bench_send import database_args  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"domains", "ips", "queries", "parallel_s", "sequential_s", "ratio", "latency_ms",
        "statuses", "same_results"}


def test_bench_deliverability_checks_runs_and_prints_json(database_args):  # noqa: F811
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "deliverability_checks.py"),
                           "--domains", "5", "--ips", "2", "--latency-ms", "5", *database_args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert KEYS <= result.keys()
    assert result["domains"] == 5 and result["ips"] == 2 and result["same_results"]
    # a listed domain, a listed IP, a duplicated DMARC record; no DNS answer went missing
    assert result["statuses"]["fail"] >= 3 and "unknown" not in result["statuses"]
