"""What forked worker children (campaign senders, the import reader) share."""
from __future__ import annotations

import ctypes
import signal


def die_with_parent() -> None:
    """Asks the kernel to kill this child when its parent dies (Linux PR_SET_PDEATHSIG), so
    a killed service leaves no orphan sending or reading on."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)          # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass
