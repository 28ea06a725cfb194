"""Smoke run of bench/send.py: a few hundred messages end to end, last line one JSON object."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.conftest import DB_KIND, PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"msgs_per_s", "ceiling_msgs_per_s", "ratio", "peak_rss_mb", "stage_seconds",
        "first_message_s", "cpu_ms_per_msg", "message_bytes"}


def _have(tool: str) -> bool:
    return bool(shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists())


@pytest.fixture()
def database_args():
    if DB_KIND != "postgres":
        yield []
        return
    name = f"ak_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield ["--database", PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name]
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.skipif(not (_have("smtp-sink") and _have("smtp-source")),
                    reason="Postfix's smtp-sink/smtp-source are not installed")
def test_bench_send_completes_and_prints_json(database_args):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "send.py"), "--messages", "300",
                           *database_args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert KEYS <= result.keys()
    assert result["sent"] == 300 and result["state"] == "finished"
    # The issue's ~30 KB messages; the ceiling is measured with messages of that size.
    assert 25_000 < result["message_bytes"] < 35_000


@pytest.mark.skipif(not (_have("smtp-sink") and _have("smtp-source")),
                    reason="Postfix's smtp-sink/smtp-source are not installed")
def test_bench_send_compares_a_local_time_campaign(database_args):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "send.py"), "--messages", "300",
                           "--local-zones", "30", *database_args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    local = result["local_time"]
    assert (local["zones"], local["send_runs"], local["sent"], local["state"]) == (30, 30, 300, "finished")
    assert local["failed"] == local["in_doubt"] == 0
    assert local["cpu_ratio"] > 0 and local["baseline_cpu_ms_per_msg"] == result["cpu_ms_per_msg"]
    assert local["quiet_hours_check_us_per_claim"] > 0
