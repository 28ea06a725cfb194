"""Lease holders: which process (host, pid, boot) holds a lease in the database, and whether
it is gone. Ledger rows, campaign runs, relay connection slots and automation runners name
their holders this way, so that a holder that died on this host is noticed at once, and one
on another host when its lease expires."""
from __future__ import annotations

import os
import socket
from datetime import datetime

HOST = socket.gethostname()


def _boot_tag() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip().replace("-", "")[:8]
    except OSError:
        return "noboot"


BOOT = _boot_tag()


def owner_name(pid: int | None = None) -> str:
    """Identifies a process as a lease holder: host:pid:boot.random."""
    return f"{HOST}:{pid or os.getpid()}:{BOOT}.{os.urandom(4).hex()}"


def owner_dead(owner: str) -> bool:
    """Whether the holder is a process of this host that is gone (another host's: unknown)."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:        # a killed sender whose parent died too may linger as a zombie for a while
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False



def lease_free(owner: str | None, until: datetime | None, now: datetime) -> bool:
    """Whether a lease may be taken: nobody holds it, it expired, or its holder is gone."""
    return owner is None or until is None or until <= now or owner_dead(owner)
