"""The one-file `altkraft-install` (PyInstaller) builds and runs: --help, and a full
`install --root` into a temporary directory.

`make test` builds dist/altkraft-install once (`make installer-binary`) and passes it in
AKTEST_INSTALLER_BINARY. With AKTEST_BUILD_INSTALLER=1 the test builds one itself (cached by
the hash of the sources); otherwise it is skipped, so that a bare `pytest` does not spend
minutes of CPU on PyInstaller.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "installer" / "altkraft-install.spec"

pytestmark = pytest.mark.slow


def _source_hash() -> str:
    digest = hashlib.sha256()
    for folder in ("installer", "systemd", "altkraft_onprem"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and "static" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def binary() -> Path:
    given = os.environ.get("AKTEST_INSTALLER_BINARY")
    if given:
        return Path(given)
    if os.environ.get("AKTEST_BUILD_INSTALLER") != "1":
        pytest.skip("the one-file build takes minutes: run `make test`, or set "
                    "AKTEST_INSTALLER_BINARY=dist/altkraft-install (make installer-binary) "
                    "or AKTEST_BUILD_INSTALLER=1")
    if shutil.which("pyinstaller", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("PyInstaller is not installed (pip install -e '.[test]')")
    cache = REPO / "build" / "installer-binary" / _source_hash()
    built = cache / "dist" / "altkraft-install"
    if not built.exists():
        subprocess.run([str(Path(sys.executable).parent / "pyinstaller"), "--noconfirm", "--clean",
                        "--log-level", "ERROR", "--distpath", str(cache / "dist"),
                        "--workpath", str(cache / "work"), str(SPEC)],
                       check=True, cwd=REPO, capture_output=True)
    return built


def test_binary_prints_help(binary):
    result = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("install", "upgrade", "uninstall", "dkim", "check-dns", "doctor"):
        assert command in result.stdout


def test_binary_installs_into_a_staging_root(binary, tmp_path):
    root = tmp_path / "root"
    result = subprocess.run([str(binary), "install", "--root", str(root), "--yes",
                             "--public-url", "https://mail.example.com", "--altkraft-bin", "/usr/bin/true"],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Create the first administrator at: https://mail.example.com/setup/" in result.stdout
    for path, mode in (("etc/altkraft/config.toml", 0o640), ("etc/altkraft/secret_key", 0o600),
                       ("var/lib/altkraft", 0o750), ("etc/systemd/system/altkraft.service", 0o644),
                       ("etc/systemd/system/altkraft-worker@.service", 0o644)):
        assert (root / path).stat().st_mode & 0o777 == mode, path
    assert (root / "var/lib/altkraft/altkraft.db").exists()
