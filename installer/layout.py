"""Where things live on the host, optionally under a staging root (`--root DIR`).

Files written under a staging root carry the *live* paths inside them (config, units), so a
staged tree can be copied onto a host or packaged as is.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "altkraft"
ETC = "/etc/altkraft"
CONFIG = "/etc/altkraft/config.toml"
SECRET_KEY = "/etc/altkraft/secret_key"
SMTP_PASSWORD = "/etc/altkraft/smtp_password"
DKIM_DIR = "/etc/altkraft/dkim"
DATA_DIR = "/var/lib/altkraft"
UNIT_DIR = "/etc/systemd/system"
UNITS = ("altkraft.service", "altkraft-worker@.service", "altkraft-inbound.service",
         "altkraft-inbound.socket")
SYSUSERS = "/etc/sysusers.d/altkraft.conf"
TMPFILES = "/etc/tmpfiles.d/altkraft.conf"


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike | None) -> Layout:
        return cls(Path(root).resolve() if root else Path("/"))

    @property
    def staged(self) -> bool:
        return self.root != Path("/")

    def path(self, live: str) -> Path:
        """The real location of a live path (under the staging root, if any)."""
        return self.root / live.lstrip("/") if self.staged else Path(live)

    def live_key_file(self, domain: str, selector: str) -> str:
        return f"{DKIM_DIR}/{selector}.{domain}.key"


def template_dir() -> Path:
    """systemd unit templates: bundled in the one-file binary, beside the package in a wheel,
    or the repository's systemd/ folder in a checkout."""
    if getattr(sys, "frozen", False):
        return Path(sys._MEIPASS) / "altkraft_installer" / "systemd"   # noqa: SLF001
    beside = Path(__file__).resolve().parent / "systemd"
    if beside.is_dir():
        return beside
    return Path(__file__).resolve().parent.parent / "systemd"


def default_altkraft_bin() -> str:
    """The `altkraft` command the units run: next to this Python, on PATH, or /opt/altkraft."""
    if not getattr(sys, "frozen", False):
        beside = Path(sys.executable).parent / "altkraft"
        if beside.exists():
            return str(beside)
    found = shutil.which("altkraft")
    return found or "/opt/altkraft/bin/altkraft"
