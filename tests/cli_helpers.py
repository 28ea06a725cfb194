"""Running the real `altkraft` command in a subprocess, with a clean ALTKRAFT_* environment."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
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


@contextmanager
def empty_database(directory: Path):
    """A database with no schema at all, on the kind the tests run against: yields its URL."""
    from sqlalchemy import text

    from tests.conftest import DB_KIND, _pg_admin, _pg_url

    if DB_KIND != "postgres":
        yield f"sqlite:///{directory / 'altkraft.db'}"
        return
    name = f"ak_empty_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name).replace("+psycopg", "")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
