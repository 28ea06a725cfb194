"""The live host: the service user, file ownership and systemd. Under a staging root none of
this runs; the sysusers.d and tmpfiles.d files written by the installer record it instead."""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from .layout import SERVICE_USER


def systemd_running() -> bool:
    """True on a host booted with systemd (sd_booted(3))."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def user_exists(name: str = SERVICE_USER) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def create_user(home: str, name: str = SERVICE_USER) -> None:
    nologin = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(p)), "/bin/false")
    subprocess.run(["useradd", "--system", "--user-group", "--home-dir", home, "--no-create-home",
                    "--shell", nologin, "--comment", "ALTKRAFT On-Premise", name], check=True)


def remove_user(name: str = SERVICE_USER) -> bool:
    if not user_exists(name):
        return False
    subprocess.run(["userdel", name], check=True)
    return True


def ids(user: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def ensure_owner(path: Path, user: str, group: str, recursive: bool = False) -> bool:
    """chown when different; True when something changed."""
    uid, gid = ids(user, group)
    changed = False
    paths = [path]
    if recursive and path.is_dir():
        paths += list(path.rglob("*"))
    for item in paths:
        stat = item.lstat()
        if (stat.st_uid, stat.st_gid) != (uid, gid):
            os.lchown(item, uid, gid)
            changed = True
    return changed


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], check=check, capture_output=True, text=True)


def unit_state(unit: str) -> tuple[bool, bool]:
    """(enabled, active)."""
    enabled = systemctl("is-enabled", unit, check=False).stdout.strip() == "enabled"
    active = systemctl("is-active", unit, check=False).stdout.strip() == "active"
    return enabled, active
