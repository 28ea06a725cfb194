"""A live install (no --root): the real `useradd`, owners and modes, then uninstall — inside a
private mount namespace whose /etc, /var/lib and /var/log are copies, so the host's users and
files stay untouched. Skipped where namespaces are not allowed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import QUEUE_KIND, REDIS_URL

ALTKRAFT = str(Path(sys.executable).with_name("altkraft"))


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("useradd") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_work(),
                                reason="needs root and mount namespaces (unshare --mount)")


@pytest.fixture()
def live(tmp_path, database_url):
    """Runs a shell script as root in a namespace with private copies of /etc and /var."""
    etc, var_lib, var_log = tmp_path / "etc", tmp_path / "var-lib", tmp_path / "var-log"
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True)
    var_lib.mkdir()
    var_log.mkdir()
    install = [sys.executable, "-m", "altkraft_installer.cli", "install", "--yes",
               "--altkraft-bin", ALTKRAFT, "--public-url", "https://mail.example.com"]
    if database_url:
        install += ["--database-url", database_url]
    if QUEUE_KIND == "redis":
        install += ["--queue-backend", "redis", "--redis-url", REDIS_URL]

    def run(script: str) -> str:
        prologue = (f"set -e; mount --bind {etc} /etc; mount --bind {var_lib} /var/lib; "
                    f"mount --bind {var_log} /var/log; ")
        result = subprocess.run(["unshare", "--mount", "sh", "-c", prologue + script],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "INSTALL": " ".join(install)})
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout
    return run


def test_live_install_creates_the_user_and_sets_owners(live):
    output = live("$INSTALL >/dev/null; getent passwd altkraft | cut -d: -f1,6,7; "
                  "stat -c '%a %U:%G %n' /etc/altkraft /etc/altkraft/config.toml "
                  "/etc/altkraft/secret_key /var/lib/altkraft")
    lines = output.splitlines()
    assert lines[0].startswith("altkraft:/var/lib/altkraft:") and lines[0].endswith("nologin")
    assert lines[1:] == ["750 root:altkraft /etc/altkraft", "640 root:altkraft /etc/altkraft/config.toml",
                         "600 altkraft:altkraft /etc/altkraft/secret_key",
                         "750 altkraft:altkraft /var/lib/altkraft"]


def test_live_install_again_changes_nothing(live):
    output = live("$INSTALL >/dev/null; $INSTALL")
    assert "nothing to change: already installed as configured" in output
    assert "systemd is not running on this host" in output


def test_live_dkim_key_belongs_to_the_service_user(live):
    output = live("$INSTALL >/dev/null; "
                  f"{sys.executable} -m altkraft_installer.cli dkim generate --domain example.com "
                  "--selector ak1 >/dev/null; stat -c '%a %U %n' /etc/altkraft/dkim/ak1.example.com.key")
    assert output.strip() == "600 altkraft /etc/altkraft/dkim/ak1.example.com.key"


def test_live_uninstall_removes_the_user_and_keeps_data(live):
    output = live("$INSTALL >/dev/null; "
                  f"{sys.executable} -m altkraft_installer.cli uninstall --yes; "
                  "getent passwd altkraft || echo 'no user'; ls /var/lib/altkraft /etc/altkraft")
    assert "changed: removed system user altkraft" in output
    assert "no user" in output
    assert "config.toml" in output


def test_live_upgrade_keeps_everything(live):
    output = live(f"$INSTALL >/dev/null; {sys.executable} -m altkraft_installer.cli upgrade")
    assert "nothing to change: already up to date" in output


def test_live_purge_removes_config_and_data(live):
    output = live(f"$INSTALL >/dev/null; {sys.executable} -m altkraft_installer.cli uninstall --purge --yes; "
                  "ls /etc/altkraft /var/lib/altkraft 2>&1 || true")
    assert "changed: removed /etc/altkraft/" in output
    assert "changed: removed /var/lib/altkraft/" in output
    assert "No such file or directory" in output
