"""A real IMAP server for tests: Debian's Dovecot, started with its own configuration in a
temporary folder on a free port of 127.0.0.1 (plain IMAP, one user)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "fbl@example.com", "imap secret"
MAIL_UID = 65534            # nobody: Dovecot refuses to store mail as root

CONFIG = """base_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


class Dovecot:
    def __init__(self, root: Path, extra: str = ""):
        self.root, self.port, self.extra = root, free_port(), extra
        self.config = root / "dovecot.conf"

    def start(self) -> Dovecot:
        (self.root / "run").mkdir(parents=True)
        (self.root / "mail").mkdir()
        os.chown(self.root / "mail", MAIL_UID, MAIL_UID)
        self.root.chmod(0o755)
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        self.config.write_text(CONFIG.format(root=self.root, port=self.port, uid=MAIL_UID) + self.extra)
        subprocess.run([DOVECOT, "-c", str(self.config)], check=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().logout()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError((self.root / "dovecot.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.config), "stop"], check=False, capture_output=True)

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(USER, PASSWORD)
        return client

    def mailbox(self, password_file: Path, **extra) -> dict:
        """An [[inbound.imap]] entry for this server."""
        password_file.write_text(PASSWORD + "\n")
        return {"host": "127.0.0.1", "port": self.port, "security": "none", "username": USER,
                "password_file": str(password_file), **extra}

    def folders(self) -> dict[str, int]:
        client = self.client()
        try:
            return {name: client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"]
                    for _flags, _sep, name in client.list_folders()}
        finally:
            client.logout()


def running_dovecot(extra: str = ""):
    """A started Dovecot (with `extra` configuration lines), stopped and removed after."""
    if os.geteuid() != 0 or not Path(DOVECOT).exists():
        pytest.skip("needs root and Dovecot (apt-get install dovecot-imapd; `make system-deps`)")
    # Not under pytest's 0700 temporary root: Dovecot's own users must reach these files.
    root = Path(tempfile.mkdtemp(prefix="ak-dovecot-"))
    server = Dovecot(root, extra).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot():
    yield from running_dovecot()
