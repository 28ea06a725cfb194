"""bench/render.py runs end to end on a small count and prints its JSON result last."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_render_benchmark_smoke():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "render.py"), "--count", "300"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["subscribers"] == 300 and result["links"] == 42 and result["text_from_template"]
