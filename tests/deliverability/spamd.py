"""SpamAssassin's spamd (Debian package spamd) as a real service on 127.0.0.1 for the pre-send
checks: local rules only (-L: no network lookups), no per-user configuration (-x), two
children. Skips when spamd is not installed (make system-deps installs it)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

from tests.smtp_sink import _free_port


@dataclass
class Spamd:
    port: int
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _answers(port: int) -> bool:
    """spamd answers PING with PONG (SPAMC protocol; plain sockets: a browser test's event
    loop may be running in this thread)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in conn.recv(100)
    except OSError:
        return False


@pytest.fixture(scope="module")
def spamd(tmp_path_factory):
    binary = shutil.which("spamd") or ("/usr/sbin/spamd" if os.path.exists("/usr/sbin/spamd") else None)
    if binary is None:
        pytest.skip("SpamAssassin's spamd is not installed (apt-get install spamd)")
    port = _free_port()
    log = tmp_path_factory.mktemp("spamd") / "spamd.log"
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "-L", "-x", *user, "--listen", f"127.0.0.1:{port}", "-m", "2",
             "--syslog=stderr"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120       # rules are compiled at start: slow on a busy host
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"spamd did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    yield Spamd(port, process)
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
