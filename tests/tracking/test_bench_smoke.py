"""A small run of bench/tracking.py against a real `altkraft run`: wrk, held streams, and the
count of stored events afterwards (none lost)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "tracking.py"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make system-deps`")
def test_tracking_benchmark_smoke():
    out = subprocess.run([sys.executable, str(BENCH), "--streams", "50", "--duration", "1",
                          "--connections", "8"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["events_lost"] == 0
    assert result["open"]["requests"] > 0 and result["click"]["requests"] > 0
    assert result["open"]["non_2xx_3xx"] == 0 and result["click"]["non_2xx_3xx"] == 0
    # an API write beside the load: measured, and never refused
    assert result["click"]["api_write"]["writes"] > 0 and result["api_write_p99_ms"] > 0
    assert result["api_write_not_200"] == 0
