"""A small run of bench/reports.py: it generates events, times every report page, prints JSON."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DB_KIND

BENCH = Path(__file__).resolve().parents[2] / "bench" / "reports.py"


@pytest.mark.slow
def test_reports_benchmark_smoke():
    args = [sys.executable, str(BENCH), "--events", "20000", "--subscribers", "2000",
            "--campaigns", "4", "--repeat", "1"]
    if DB_KIND == "postgres":
        args.append("--postgres")
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["events_stored"] == 20000
    assert set(result["page_seconds"]) >= {"campaign_report", "clickmap", "cohorts_month",
                                            "engagement_day", "dashboard"}
