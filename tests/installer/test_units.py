"""`systemd-analyze verify` accepts every rendered unit."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from altkraft_installer.steps import render_unit

ALTKRAFT = str(Path(sys.executable).with_name("altkraft"))

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is missing (apt-get install systemd)")


@pytest.mark.parametrize("template, name", [("altkraft.service", "altkraft.service"),
                                            ("altkraft-worker@.service", "altkraft-worker@.service"),
                                            ("altkraft-worker@.service", "altkraft-worker@3.service")])
def test_systemd_analyze_verify_passes(tmp_path, template, name):
    unit = tmp_path / name
    unit.write_text(render_unit(template, altkraft_bin=ALTKRAFT, stop_timeout=60))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr      # warnings (unknown keys...) count too
