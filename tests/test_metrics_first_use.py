"""The first requests of a fresh worker arrive together (a page and its assets): creating the
Prometheus metrics on first use must not fail when several threads get there at once."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RACE = """
import threading
from altkraft_onprem import metrics

barrier = threading.Barrier(16)
errors = []

def first_use():
    barrier.wait()
    try:
        metrics._get()["requests"]
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=first_use) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print("errors:", errors)
raise SystemExit(1 if errors else 0)
"""


def test_metrics_created_once_under_concurrent_first_use():
    for _ in range(3):          # a fresh process each time: the metrics do not exist yet
        run = subprocess.run([sys.executable, "-c", RACE], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
