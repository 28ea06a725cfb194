"""Running the real `altkraft` command in a subprocess, with a clean ALTKRAFT_* environment."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def altkraft(*args: str, env: dict | None = None, input: str | None = None,
             cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "altkraft_onprem.cli", *args], env=environment,
                          input=input, capture_output=True, text=True, cwd=cwd, timeout=timeout)


def env_for(settings, **extra: str) -> dict[str, str]:
    """ALTKRAFT_* variables that point a command at a test module's data and database."""
    values = {
        "ALTKRAFT_DATA_DIR": str(settings.data_dir),
        "ALTKRAFT_DATABASE__URL": settings["database.url"],
        "ALTKRAFT_QUEUE__BACKEND": settings["queue.backend"],
        "ALTKRAFT_QUEUE__REDIS_URL": settings["queue.redis_url"],
        "ALTKRAFT_QUEUE__NAME": settings["queue.name"],
    }
    values.update(extra)
    return values
