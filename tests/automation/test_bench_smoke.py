"""A small run of bench/automation.py: enrollments through wait -> condition -> send ->
update, the sends to smtp-sink, and its JSON line (figures are for bench/, not asserted)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.test_bench_send import database_args  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"enrollments_per_s", "steps_per_s", "cpu_ms_per_step", "peak_rss_mb",
        "baseline_pairs_per_s", "ratio", "baseline_cpu_ms_per_pair", "cpu_ratio", "send_msgs_per_s"}


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()),
                    reason="Postfix's smtp-sink is not installed")
def test_bench_automation_runs_everyone_through_and_prints_json(database_args):  # noqa: F811
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "automation.py"), "--enrollments",
                           "240", *database_args], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert KEYS <= result.keys()
    assert result["done"] == 240
    # wait + condition + one more node each; the Moscow eighth also sends (one step more)
    assert result["steps"] == 240 * 3 + 30 and result["sent"] == 30
