"""A small run of bench/transactional.py against the real service: it answers, stores every
accepted request, sends them all and prints its JSON line (speed is measured by the bench)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DB_KIND

BENCH = Path(__file__).resolve().parents[2] / "bench" / "transactional.py"


@pytest.mark.slow
@pytest.mark.skipif(DB_KIND != "sqlite", reason="the goal is measured on SQLite")
@pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk (make system-deps)")
def test_transactional_benchmark_smoke():
    out = subprocess.run([sys.executable, str(BENCH), "--duration", "2", "--rate", "40",
                          "--connections", "4", "--drain-timeout", "90"],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for run in ("paced", "flat_out"):
        assert result[run]["transactional"]["requests"] > 0
        assert result[run]["transactional"]["non_2xx_3xx"] == 0
        assert result[run]["baseline_healthz"]["rps"] > 0
    # wrk counts the answers it read; a request in flight when it stopped is stored too.
    assert result["stored"] >= result["accepted"]
    assert result["ledger"] == {"sent": result["stored"]}
