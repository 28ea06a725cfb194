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
                                            ("altkraft-worker@.service", "altkraft-worker@3.service"),
                                            ("altkraft-inbound.service", "altkraft-inbound.service"),
                                            ("altkraft-inbound.socket", "altkraft-inbound.socket")])
def test_systemd_analyze_verify_passes(tmp_path, template, name):
    unit = tmp_path / name
    unit.write_text(render_unit(template, altkraft_bin=ALTKRAFT, stop_timeout=60))
    if name.endswith(".socket"):        # a socket unit is verified with the service it starts
        (tmp_path / "altkraft-inbound.service").write_text(
            render_unit("altkraft-inbound.service", altkraft_bin=ALTKRAFT, stop_timeout=60))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr      # warnings (unknown keys...) count too
