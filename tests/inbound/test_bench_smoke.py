"""Smoke run of bench/inbound.py: a few hundred mixed reports over SMTP into the real receiver,
classified; nothing acknowledged is lost and each outcome is applied exactly once."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DB_KIND

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (shutil.which("smtp-source") or Path("/usr/sbin/smtp-source").exists()),
                    reason="smtp-source is missing (apt-get install postfix)")
@pytest.mark.skipif(DB_KIND != "sqlite", reason="the smoke run uses its own SQLite file")
def test_bench_inbound_smoke():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "inbound.py"), "--messages", "300",
                             "--clients", "2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"msgs_per_s", "p99_ms", "classified_per_s", "ceiling_msgs_per_s", "ratio"} <= found.keys()
    assert found["acked"] == found["stored"] == 300 and found["lost"] == 0
    assert found["states"].get("new", 0) == 0
    assert found["outcomes"] == found["expected_outcomes"]
    assert found["bounce_rows"] == found["expected_outcomes"]["bounce"]
    assert found["complaint_rows"] == found["expected_outcomes"]["complaint"]
