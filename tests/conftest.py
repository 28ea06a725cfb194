"""Test fixtures: a fresh app and database per test module, on SQLite or Postgres.

Choose the database with AKTEST_DB=sqlite|postgres (default sqlite) and the queue with
AKTEST_QUEUE=sqlite|redis (default sqlite). The schema is migrated once per session into a
template (a SQLite file, or a Postgres template database) that each module copies.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import settings as hypothesis_settings
from sqlalchemy import create_engine, text

from altkraft_onprem import config, db, tasks
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.app import create_app
from altkraft_onprem.db import migrate

# A deadline is a timing assertion: on a loaded CI host the first example of a fast test can
# take hundreds of milliseconds. Speed is measured in bench/, not here.
hypothesis_settings.register_profile("altkraft", deadline=None)
hypothesis_settings.load_profile("altkraft")

DB_KIND = os.environ.get("AKTEST_DB", "sqlite")
QUEUE_KIND = os.environ.get("AKTEST_QUEUE", "sqlite")
PG_ADMIN_URL = os.environ.get("AKTEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AKTEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct horse battery"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

_counter = itertools.count()
# `smtp_sink`: aiosmtpd on 127.0.0.1; `page`, `new_page`, `browser`: Playwright fixtures
pytest_plugins = ["tests.smtp_sink", "tests.browser"]


def pytest_report_header(config):
    return f"altkraft: database={DB_KIND} queue={QUEUE_KIND}"


def _pg_admin():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def template_db(tmp_path_factory):
    """A migrated, empty database that modules copy: (kind, location)."""
    if DB_KIND == "postgres":
        name = f"ak_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = db.build_engine(_pg_url(name))
        migrate.upgrade(engine)
        with db.write(engine) as conn:
            access.sync_builtin_roles(conn)
        engine.dispose()
        yield name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("template") / "altkraft.db"
        engine = db.build_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        with db.write(engine) as conn:
            access.sync_builtin_roles(conn)
        engine.dispose()
        yield path


def fresh_database(template, data_dir: Path) -> tuple[str, callable]:
    """A new database copied from the template: (url, drop)."""
    if DB_KIND == "postgres":
        name = f"ak_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        return _pg_url(name).replace("+psycopg", ""), drop
    target = data_dir / "altkraft.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}", lambda: None


def make_settings(data_dir: Path, database_url: str, **overrides) -> config.Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "secret_key").write_text("k" * 48)
    # Own queue name: test runs sharing the Redis database never take each other's jobs.
    values = {"data_dir": str(data_dir), "database.url": database_url,
              "queue.backend": QUEUE_KIND, "queue.redis_url": REDIS_URL,
              "queue.name": f"aktest-{uuid.uuid4().hex[:12]}",
              # The public form's robot check and MX check have their own tests
              # (tests/audience/test_captcha.py); elsewhere forms are posted by test clients,
              # and this host's DNS knows no real domain.
              "public.captcha": "off", "public.check_mx": False}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return config.load(environ={}, overrides=values)


@dataclass
class Env:
    """One module's world: settings, engine and app over a fresh database."""

    settings: config.Settings
    engine: object
    app: object
    data_dir: Path
    database_url: str

    def user(self, role: str = "Administrator", email: str | None = None) -> dict:
        email = email or f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        with db.write(self.engine) as conn:
            role_id = access.role_id_by_name(conn, role)
            user_id = access.create_user(conn, system_actor(), email, PASSWORD, role_id)
        return {"id": user_id, "email": email, "password": PASSWORD, "role": role}

    def token(self, role: str = "Administrator") -> str:
        user = self.user(role)
        with db.write(self.engine) as conn:
            _, secret = access.create_token(conn, system_actor(), user["id"], "test")
        return secret

    def login(self, client, user: dict) -> None:
        """Signs a test client in through the real login form (CSRF token included)."""
        page = client.get("/login")
        token = csrf_token(page.get_data(as_text=True))
        response = client.post("/login", data={"email": user["email"], "password": user["password"],
                                               "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]


def csrf_token(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory) -> Env:
    data_dir = tmp_path_factory.mktemp("data")
    url, drop = fresh_database(template_db, data_dir)
    settings = make_settings(data_dir, url)
    engine = db.build_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    yield Env(settings, engine, app, data_dir, url)
    engine.dispose()
    drop()


@pytest.fixture()
def client(env):
    return env.app.test_client()


# --- the real service, as a subprocess ------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self, sig=signal.SIGTERM, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def service_environment(env: Env, port: int, extra_env: dict | None = None) -> dict:
    """The environment of an `altkraft` process against the module's database and queue."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ALTKRAFT_")}
    environment.update({
        "ALTKRAFT_DATA_DIR": str(env.data_dir),
        "ALTKRAFT_DATABASE__URL": env.database_url,
        "ALTKRAFT_QUEUE__BACKEND": QUEUE_KIND,
        "ALTKRAFT_QUEUE__REDIS_URL": REDIS_URL,
        "ALTKRAFT_QUEUE__NAME": env.settings["queue.name"],
        "ALTKRAFT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ALTKRAFT_SERVER__WORKERS": "1",
        "ALTKRAFT_QUEUE__WORKERS": "1",
        "ALTKRAFT_QUEUE__WORKER_TYPE": "thread",
        # The robot check stays on (browsers solve it); this host's DNS knows no real domain.
        "ALTKRAFT_PUBLIC__CHECK_MX": "false",
    })
    environment.update(extra_env or {})
    return environment


def start_process(env: Env, name: str, command: list[str], environment: dict) -> subprocess.Popen:
    """An `altkraft` command in its own process group, its output in DATA_DIR/NAME.log."""
    return subprocess.Popen([sys.executable, "-m", "altkraft_onprem.cli", *command],
                            stdout=open(env.data_dir / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                            env=environment, start_new_session=True)


def start_service(env: Env, *args: str, extra_env: dict | None = None,
                  command: str = "run") -> LiveServer:
    """Starts `altkraft run` (the whole appliance) against the module's database."""
    port = free_port()
    log = env.data_dir / f"service-{port}.log"
    process = start_process(env, f"service-{port}", [command, "--bind", f"127.0.0.1:{port}", *args],
                            service_environment(env, port, extra_env))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url + "/healthz", timeout=1).ok:
                return LiveServer(url, process, log)
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"service did not answer in 30 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def live_server(env):
    server = start_service(env)
    yield server
    server.stop()
