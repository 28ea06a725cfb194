"""A small run of bench/segment_count.py: it generates, counts and prints its JSON line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DB_KIND, PG_ADMIN_URL

BENCH = Path(__file__).resolve().parents[2] / "bench" / "segment_count.py"


@pytest.mark.slow
def test_segment_count_benchmark_smoke():
    args = [sys.executable, str(BENCH), "--rows", "3000", "--repeat", "1"]
    if DB_KIND == "postgres":
        args += ["--database", PG_ADMIN_URL]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows"] == 3000
    assert result["matched"] == len([n for n in range(1, 3001)
                                     if n % 10 == 0 and n % 7 == 0 and n % 2 == 0 and n % 4 != 0])
