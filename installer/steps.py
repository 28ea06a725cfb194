"""install / upgrade / uninstall as idempotent steps: each step compares what is there with
what should be there and acts (and reports) only on a difference."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from altkraft_onprem import config as config_module

from . import configfile, system
from .layout import (
    CONFIG,
    DATA_DIR,
    DKIM_DIR,
    ETC,
    SECRET_KEY,
    SERVICE_USER,
    SMTP_PASSWORD,
    SYSUSERS,
    TMPFILES,
    UNIT_DIR,
    UNITS,
    Layout,
    default_altkraft_bin,
    template_dir,
)


class InstallError(Exception):
    """One line for the operator (exit status 2)."""


@dataclass
class Answers:
    """What the installer asks; the same names work as flags and in an answers file."""

    public_url: str = "http://127.0.0.1:8080"
    bind: str = "127.0.0.1:8080"
    database_url: str = ""
    queue_backend: str = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    helo: str = ""

    def config_values(self) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        values: dict[str, Any] = {"data_dir": DATA_DIR, "secret_key_file": SECRET_KEY,
                                  "server.bind": self.bind, "server.public_url": self.public_url}
        if self.database_url:
            values["database.url"] = self.database_url
        if self.queue_backend != "sqlite":
            values["queue.backend"] = self.queue_backend
            values["queue.redis_url"] = self.redis_url
        tables: dict[str, list[dict[str, Any]]] = {}
        if self.smtp_host:
            relay: dict[str, Any] = {"host": self.smtp_host, "port": int(self.smtp_port),
                                     "security": self.smtp_security}
            if self.smtp_username:
                relay["username"] = self.smtp_username
            if self.smtp_password:
                relay["password_file"] = SMTP_PASSWORD
            if self.helo:
                relay["helo"] = self.helo
            tables["smtp.relays"] = [relay]
        return values, tables


@dataclass
class Outcome:
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    url: str = ""
    setup_link: str | None = None


def load_settings(layout: Layout) -> config_module.Settings:
    """The installed config as the service reads it, with its paths mapped into the root."""
    path = layout.path(CONFIG)
    settings = config_module.load(path, environ={})
    if layout.staged:
        over = {"data_dir": str(layout.path(str(Path(settings["data_dir"]).absolute())))}
        if settings["secret_key_file"]:
            over["secret_key_file"] = str(layout.path(settings["secret_key_file"]))
        settings = settings.replace(**over)
    return settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Installer:
    def __init__(self, layout: Layout, say: Callable[[str], None] = print):
        self.layout = layout
        self.say = say
        self.out = Outcome()

    def _changed(self, text: str) -> None:
        self.out.changes.append(text)
        self.say(f"  changed: {text}")

    # --- files ------------------------------------------------------------------------------

    def write_file(self, live: str, content: str | bytes, mode: int) -> bool:
        path = self.layout.path(live)
        data = content.encode() if isinstance(content, str) else content
        if path.exists() and path.read_bytes() == data:
            return self.ensure_mode(live, mode)
        configfile.write_atomic(path, data, mode)
        self._changed(f"wrote {path} ({mode:04o})")
        return True

    def ensure_mode(self, live: str, mode: int) -> bool:
        path = self.layout.path(live)
        if path.exists() and _mode(path) != mode:
            os.chmod(path, mode)
            self._changed(f"mode of {path} set to {mode:04o}")
            return True
        return False

    def ensure_dir(self, live: str, mode: int) -> None:
        path = self.layout.path(live)
        if not path.is_dir():
            path.mkdir(parents=True, mode=mode)
            os.chmod(path, mode)
            self._changed(f"created {path}/ ({mode:04o})")
        else:
            self.ensure_mode(live, mode)

    def remove(self, live: str) -> None:
        path = self.layout.path(live)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            self._changed(f"removed {path}/")
        elif path.exists() or path.is_symlink():
            path.unlink()
            self._changed(f"removed {path}")

    # --- steps ------------------------------------------------------------------------------

    def config(self, answers: Answers) -> None:
        path = self.layout.path(CONFIG)
        self.ensure_dir(ETC, 0o750)
        if path.exists():
            self.ensure_mode(CONFIG, 0o640)
            self._settings_or_fail()
            return
        values, tables = answers.config_values()
        text = configfile.render(values, tables)
        try:
            configfile.validate(text)
        except config_module.ConfigError as exc:
            raise InstallError(str(exc)) from None
        self.write_file(CONFIG, text, 0o640)

    def _settings_or_fail(self) -> config_module.Settings:
        try:
            return load_settings(self.layout)
        except config_module.ConfigError as exc:
            raise InstallError(str(exc)) from None

    def secrets(self, answers: Answers) -> None:
        if not self.layout.path(SECRET_KEY).exists():
            self.write_file(SECRET_KEY, secrets.token_urlsafe(48) + "\n", 0o600)
        else:
            self.ensure_mode(SECRET_KEY, 0o600)
        if answers.smtp_password:
            self.write_file(SMTP_PASSWORD, answers.smtp_password + "\n", 0o600)

    def data_dir(self) -> None:
        self.ensure_dir(DATA_DIR, 0o750)

    def system_files(self) -> None:
        """sysusers.d / tmpfiles.d: the user and ownership, as systemd applies them at boot."""
        self.write_file(SYSUSERS, f'u {SERVICE_USER} - "ALTKRAFT On-Premise" {DATA_DIR} -\n', 0o644)
        self.write_file(TMPFILES, "\n".join([
            "# ALTKRAFT On-Premise: owners and modes (systemd-tmpfiles --create altkraft.conf)",
            f"d {DATA_DIR} 0750 {SERVICE_USER} {SERVICE_USER} -",
            f"Z {DATA_DIR} - {SERVICE_USER} {SERVICE_USER} -",
            f"d {ETC} 0750 root {SERVICE_USER} -",
            f"z {CONFIG} 0640 root {SERVICE_USER} -",
            f"z {SECRET_KEY} 0600 {SERVICE_USER} {SERVICE_USER} -",
            f"Z {DKIM_DIR} - {SERVICE_USER} {SERVICE_USER} -",
            "",
        ]), 0o644)

    def units(self, altkraft_bin: str, stop_timeout: int) -> bool:
        changed = False
        for name in UNITS:
            text = render_unit(name, altkraft_bin=altkraft_bin, stop_timeout=stop_timeout)
            changed |= self.write_file(f"{UNIT_DIR}/{name}", text, 0o644)
        return changed

    def user_and_owners(self) -> None:
        if self.layout.staged:
            return
        if not system.user_exists():
            system.create_user(DATA_DIR)
            self._changed(f"created system user {SERVICE_USER}")
        owners = [(ETC, "root", False), (CONFIG, "root", False), (SECRET_KEY, SERVICE_USER, False),
                  (SMTP_PASSWORD, SERVICE_USER, False), (DKIM_DIR, SERVICE_USER, True),
                  (DATA_DIR, SERVICE_USER, True)]
        for live, owner, recursive in owners:
            path = Path(live)
            if path.exists() and system.ensure_owner(path, owner, SERVICE_USER, recursive):
                self._changed(f"owner of {live} set to {owner}:{SERVICE_USER}")

    def _engine(self, settings: config_module.Settings):
        from altkraft_onprem import db

        return db.build_engine(settings.database_url, pool_size=settings["database.pool_size"],
                               busy_timeout_ms=settings["database.busy_timeout_ms"])

    def migrate(self) -> config_module.Settings:
        """`altkraft db upgrade`, by the appliance's own code."""
        from altkraft_onprem.cli import _upgrade
        from altkraft_onprem.db import migrate as migrations

        settings = self._settings_or_fail()
        engine = None
        try:
            engine = self._engine(settings)
            before = migrations.pending(engine)
            if before:
                _upgrade(engine)
                self._changed(f"database migrated ({', '.join(sorted(before))})")
        except Exception as exc:  # noqa: BLE001 - any database trouble is one line for IT
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise InstallError(f"database migration failed: {reason}") from None
        finally:
            if engine is not None:
                engine.dispose()
        self.out.url = settings["server.public_url"]
        return settings

    def setup_link(self, settings: config_module.Settings, after_start: bool) -> None:
        """A first-admin link while no user exists. `altkraft run` replaces the setup token when
        it starts, so after starting the service this waits until it listens, then issues."""
        from altkraft_onprem import db
        from altkraft_onprem.access import service as access
        from altkraft_onprem.server import wait_for_port

        if after_start:
            host, _, port = settings["server.bind"].rpartition(":")
            host = "127.0.0.1" if host in ("0.0.0.0", "", "[::]") else host.strip("[]")
            if not wait_for_port(host, int(port), timeout=90):
                self.out.notes.append(f"the service does not listen on {settings['server.bind']} "
                                      "yet: see `journalctl -u altkraft`")
        engine = self._engine(settings)
        try:
            with db.write(engine) as conn:
                if access.setup_needed(conn):
                    token = access.issue_setup_token(conn)
                    self.out.setup_link = f"{settings['server.public_url']}/setup/{token}"
        finally:
            engine.dispose()

    def service(self, units_changed: bool, start: bool, restart: bool = False) -> bool:
        """Enables and (re)starts the unit on a live systemd host; True when it (re)started."""
        if self.layout.staged:
            self.out.notes.append(f"staged under {self.layout.root}: no user created, nothing started "
                                  f"(see {SYSUSERS} and {TMPFILES} in the tree)")
            return False
        if not system.systemd_running():
            self.out.notes.append("systemd is not running on this host: start the appliance with "
                                  f"`altkraft --config {CONFIG} run`")
            return False
        if units_changed:
            system.systemctl("daemon-reload")
        if not start:
            self.out.notes.append("--no-start: start it with `systemctl enable --now altkraft`")
            return False
        enabled, active = system.unit_state("altkraft.service")
        if not enabled:
            system.systemctl("enable", "altkraft.service")
            self._changed("enabled altkraft.service")
        if not active:
            system.systemctl("start", "altkraft.service")
            self._changed("started altkraft.service")
            return True
        if units_changed or restart:
            system.systemctl("restart", "altkraft.service")
            self.say("  restarted altkraft.service")
            return True
        return False


def render_unit(name: str, *, altkraft_bin: str, stop_timeout: int) -> str:
    hardening = (template_dir() / "hardening.inc").read_text()
    hardening = "".join(line for line in hardening.splitlines(True) if not line.startswith("#"))
    text = (template_dir() / name).read_text().replace("@HARDENING@\n", hardening)
    for marker, value in {"@USER@": SERVICE_USER, "@GROUP@": SERVICE_USER, "@CONFIG@": CONFIG,
                          "@BIN@": altkraft_bin, "@DATA_DIR@": DATA_DIR,
                          "@STOP_TIMEOUT@": str(stop_timeout)}.items():
        text = text.replace(marker, value)
    return text


def installed_bin(layout: Layout) -> str | None:
    """The `altkraft` command an earlier install put in the unit (kept across upgrades)."""
    unit = layout.path(f"{UNIT_DIR}/altkraft.service")
    if unit.exists():
        found = re.search(r"^ExecStart=(\S+)", unit.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    return None


def stop_timeout(settings: config_module.Settings) -> int:
    """Longer than gunicorn's graceful timeout, so running jobs finish before a kill."""
    return settings["server.graceful_timeout"] + 30


def install(layout: Layout, answers: Answers, *, altkraft_bin: str | None, start: bool,
            say: Callable[[str], None] = print) -> Outcome:
    os.umask(0o027)      # files the migration creates (the SQLite database) as the service would
    job = Installer(layout, say)
    altkraft_bin = altkraft_bin or installed_bin(layout) or default_altkraft_bin()
    if not layout.staged and not os.access(altkraft_bin, os.X_OK):
        job.out.notes.append(f"{altkraft_bin} is not there yet: the service cannot start until the "
                             "appliance is installed there (docs/install.md) or --altkraft-bin names it")
    job.config(answers)
    job.secrets(answers)
    job.data_dir()
    job.system_files()
    settings = job._settings_or_fail()
    units_changed = job.units(altkraft_bin, stop_timeout(settings))
    job.user_and_owners()
    settings = job.migrate()
    job.user_and_owners()      # the database files the migration just created
    started = job.service(units_changed, start)
    job.setup_link(settings, after_start=started)
    return job.out


def upgrade(layout: Layout, *, altkraft_bin: str | None, say: Callable[[str], None] = print) -> Outcome:
    if not layout.path(CONFIG).exists():
        raise InstallError(f"not installed: {layout.path(CONFIG)} is missing (run `altkraft-install install`)")
    os.umask(0o027)
    job = Installer(layout, say)
    settings = job._settings_or_fail()
    job.data_dir()
    job.system_files()
    units_changed = job.units(altkraft_bin or installed_bin(layout) or default_altkraft_bin(),
                              stop_timeout(settings))
    settings = job.migrate()
    job.user_and_owners()
    started = job.service(units_changed, start=True, restart=True)
    job.setup_link(settings, after_start=started)
    return job.out


def uninstall(layout: Layout, *, purge: bool, say: Callable[[str], None] = print) -> Outcome:
    job = Installer(layout, say)
    live = not layout.staged and system.systemd_running()
    if live:
        system.systemctl("disable", "--now", "altkraft.service", check=False)
        system.systemctl("stop", "altkraft-worker@*.service", check=False)
        system.systemctl("disable", "--now", "altkraft-inbound.socket", "altkraft-inbound.service",
                         check=False)
    for name in UNITS:
        job.remove(f"{UNIT_DIR}/{name}")
    job.remove(SYSUSERS)
    job.remove(TMPFILES)
    if live:
        system.systemctl("daemon-reload", check=False)
    if not layout.staged and system.remove_user():
        job._changed(f"removed system user {SERVICE_USER}")
    if purge:
        job.remove(ETC)
        job.remove(DATA_DIR)
        job.out.notes.append("a Postgres database or Redis queue named in the config is not dropped")
    else:
        job.out.notes.append(f"kept {layout.path(ETC)} and {layout.path(DATA_DIR)} (--purge removes them)")
    return job.out
