"""A small run of bench/import_1m.py: generates, imports through the job, prints its JSON line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DB_KIND, PG_ADMIN_URL

BENCH = Path(__file__).resolve().parents[2] / "bench" / "import_1m.py"


@pytest.mark.slow
def test_import_benchmark_smoke():
    args = [sys.executable, str(BENCH), "--rows", "2000"]
    if DB_KIND == "postgres":
        args += ["--database", PG_ADMIN_URL]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"] == "finished"
    assert {"rows_per_s", "wall_s", "peak_rss_mb", "baseline_s", "ratio"} <= set(result)
    counts = result["counts"]
    # 1% bad rows, 2% duplicates: every other row is added (a fresh database).
    assert counts["added"] + counts["duplicates"] + counts["invalid"] == 2000
    assert 0 < counts["invalid"] < 60 and 0 < counts["duplicates"] < 100


@pytest.mark.slow
def test_import_benchmark_update_smoke():
    """--update imports the same people again, changed, into a second list: each is updated."""
    args = [sys.executable, str(BENCH), "--rows", "1000", "--update"]
    if DB_KIND == "postgres":
        args += ["--database", PG_ADMIN_URL]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"update_wall_s", "update_cpu_s"} <= set(result)
    assert result["update_counts"]["updated"] == result["counts"]["added"] > 0
