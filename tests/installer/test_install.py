"""install / upgrade / uninstall into a staging root (--root), checked file by file."""
from __future__ import annotations

import os
import stat
import tomllib

import pytest
from click.testing import CliRunner

from altkraft_installer.cli import cli
from altkraft_onprem import config as config_module
from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.db import migrate
from tests.conftest import QUEUE_KIND, REDIS_URL

UNITS = "etc/systemd/system"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def install_args(root, database_url, *extra) -> list[str]:
    args = ["install", "--root", str(root), "--yes", "--public-url", "https://mail.example.com",
            "--bind", "127.0.0.1:8181", "--altkraft-bin", "/usr/bin/true"]
    if database_url:
        args += ["--database-url", database_url]
    if QUEUE_KIND == "redis":
        args += ["--queue-backend", "redis", "--redis-url", REDIS_URL]
    return args + list(extra)


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def snapshot(root) -> dict[str, tuple[int, bytes]]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "var/lib" not in str(path):      # the database may checkpoint
            files[str(path.relative_to(root))] = (mode(path), path.read_bytes())
    return files


@pytest.fixture()
def installed(tmp_path, database_url):
    root = tmp_path / "root"
    result = run(*install_args(root, database_url))
    assert result.exit_code == 0, result.output
    return root, result.output


def test_install_creates_config_with_the_answers(installed, database_url):
    root, _ = installed
    path = root / "etc/altkraft/config.toml"
    assert mode(path) == 0o640
    document = tomllib.loads(path.read_text())
    assert document["server"]["public_url"] == "https://mail.example.com"
    assert document["server"]["bind"] == "127.0.0.1:8181"
    assert document["data_dir"] == "/var/lib/altkraft"
    assert document["secret_key_file"] == "/etc/altkraft/secret_key"
    assert document.get("database", {}).get("url", "") == database_url
    assert "# Address and port the web service listens on." in path.read_text()   # comments kept
    assert config_module.load(path, environ={})["server.public_url"] == "https://mail.example.com"


def test_install_creates_secret_key_and_data_dir(installed):
    root, _ = installed
    key = root / "etc/altkraft/secret_key"
    assert mode(key) == 0o600
    assert len(key.read_text().strip()) >= 48
    assert mode(root / "var/lib/altkraft") == 0o750
    assert mode(root / "etc/altkraft") == 0o750


def test_install_renders_both_units(installed):
    root, _ = installed
    main = (root / UNITS / "altkraft.service").read_text()
    worker = (root / UNITS / "altkraft-worker@.service").read_text()
    assert mode(root / UNITS / "altkraft.service") == 0o644
    assert "ExecStart=/usr/bin/true --config /etc/altkraft/config.toml run" in main
    assert "ExecStartPre=/usr/bin/true --config /etc/altkraft/config.toml db upgrade" in main
    assert "ExecStart=/usr/bin/true --config /etc/altkraft/config.toml worker" in worker
    for unit in (main, worker):
        assert "@" not in unit.replace("@system-service", "").replace("%i", "").replace("altkraft-worker@", "")
        for line in ("User=altkraft", "NoNewPrivileges=yes", "ProtectSystem=strict",
                     "ReadWritePaths=/var/lib/altkraft", "PrivateTmp=yes", "UMask=0027",
                     "SystemCallFilter=@system-service", "Restart=on-failure", "KillMode=mixed"):
            assert line in unit.splitlines(), line


def test_stop_timeout_outlasts_the_graceful_timeout(installed):
    root, _ = installed
    main = (root / UNITS / "altkraft.service").read_text().splitlines()
    assert "KillSignal=SIGTERM" in main          # gunicorn's master stops the consumer itself
    worker = (root / UNITS / "altkraft-worker@.service").read_text().splitlines()
    assert "KillSignal=SIGINT" in worker         # huey's graceful stop
    timeout = int(next(line for line in main if line.startswith("TimeoutStopSec=")).split("=")[1])
    assert timeout > config_module.BY_KEY["server.graceful_timeout"].default


def test_install_records_the_user_it_would_create(installed):
    root, output = installed
    assert (root / "etc/sysusers.d/altkraft.conf").read_text().startswith("u altkraft - ")
    tmpfiles = (root / "etc/tmpfiles.d/altkraft.conf").read_text().splitlines()
    assert "z /etc/altkraft/config.toml 0640 root altkraft -" in tmpfiles
    assert "d /var/lib/altkraft 0750 altkraft altkraft -" in tmpfiles
    assert "no user created, nothing started" in output


def test_install_migrates_the_database_and_prints_a_working_setup_link(installed, database_url):
    root, output = installed
    link = next(line for line in output.splitlines() if line.startswith("Create the first administrator"))
    token = link.rsplit("/setup/", 1)[1]
    assert link.split(": ", 1)[1].startswith("https://mail.example.com/setup/")
    assert "ALTKRAFT URL: https://mail.example.com" in output
    engine = db.build_engine(database_url or f"sqlite:///{root / 'var/lib/altkraft/altkraft.db'}")
    try:
        assert migrate.pending(engine) == set()
        with db.read(engine) as conn:
            assert access.setup_token_valid(conn, token)
    finally:
        engine.dispose()


def test_second_install_changes_nothing_and_says_so(installed, database_url):
    root, _ = installed
    before = snapshot(root)
    result = run(*install_args(root, database_url))
    assert result.exit_code == 0
    assert "nothing to change: already installed as configured" in result.output
    assert "changed:" not in result.output
    assert snapshot(root) == before


def test_install_repairs_a_loosened_mode(installed, database_url):
    root, _ = installed
    os.chmod(root / "etc/altkraft/secret_key", 0o644)
    result = run(*install_args(root, database_url))
    assert "mode of" in result.output and "secret_key set to 0600" in result.output
    assert mode(root / "etc/altkraft/secret_key") == 0o600


def test_upgrade_keeps_config_and_refreshes_units(installed):
    root, _ = installed
    config = root / "etc/altkraft/config.toml"
    config.write_text(config.read_text().replace("#log_level = \"warning\"", "log_level = \"debug\""))
    unit = root / UNITS / "altkraft.service"
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=no"))
    result = run("upgrade", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert f"changed: wrote {unit} (0644)" in result.output
    assert 'log_level = "debug"' in config.read_text()
    assert "Restart=on-failure" in unit.read_text().splitlines()


def test_upgrade_again_changes_nothing(installed):
    root, _ = installed
    result = run("upgrade", "--root", str(root))
    assert "nothing to change: already up to date" in result.output


def test_upgrade_without_install_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["upgrade", "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert "not installed" in result.output


def test_uninstall_removes_units_and_keeps_data(installed):
    root, _ = installed
    result = run("uninstall", "--root", str(root))
    assert result.exit_code == 0
    assert not (root / UNITS / "altkraft.service").exists()
    assert not (root / UNITS / "altkraft-worker@.service").exists()
    assert not (root / "etc/sysusers.d/altkraft.conf").exists()
    assert (root / "etc/altkraft/config.toml").exists()
    assert (root / "var/lib/altkraft").is_dir()
    assert "--purge removes them" in result.output


def test_uninstall_purge_removes_config_and_data(installed):
    root, _ = installed
    result = run("uninstall", "--root", str(root), "--purge", "--yes")
    assert result.exit_code == 0
    assert not (root / "etc/altkraft").exists()
    assert not (root / "var/lib/altkraft").exists()


def test_interactive_install_asks_each_question(tmp_path):
    root = tmp_path / "root"
    answers = "\n".join(["https://news.example.org", "", "", "sqlite", "smtp.example.org", "587",
                         "starttls", "mailer", "s3cret", "mail.example.org"]) + "\n"
    result = run("install", "--root", str(root), "--altkraft-bin", "/usr/bin/true", input=answers)
    assert result.exit_code == 0, result.output
    settings = config_module.load(root / "etc/altkraft/config.toml", environ={})
    assert settings["server.public_url"] == "https://news.example.org"
    relay = settings["smtp.relays"][0]
    assert (relay["host"], relay["username"], relay["password_file"], relay["helo"]) == \
        ("smtp.example.org", "mailer", "/etc/altkraft/smtp_password", "mail.example.org")
    assert (root / "etc/altkraft/smtp_password").read_text() == "s3cret\n"
    assert mode(root / "etc/altkraft/smtp_password") == 0o600


def test_answers_file_fills_the_config(tmp_path):
    answers = tmp_path / "answers.toml"
    answers.write_text('public_url = "https://a.example.net"\nsmtp_host = "relay.example.net"\n'
                       'smtp_port = 25\nsmtp_security = "none"\n')
    root = tmp_path / "root"
    result = run("install", "--root", str(root), "--yes", "--answers", str(answers),
                 "--altkraft-bin", "/usr/bin/true")
    assert result.exit_code == 0, result.output
    settings = config_module.load(root / "etc/altkraft/config.toml", environ={})
    assert settings["server.public_url"] == "https://a.example.net"
    assert settings["smtp.relays"][0]["port"] == 25


def test_unknown_key_in_answers_file_is_named(tmp_path):
    answers = tmp_path / "answers.toml"
    answers.write_text('public_ulr = "https://a.example.net"\n')
    result = CliRunner().invoke(cli, ["install", "--root", str(tmp_path / "r"), "--yes", "--answers", str(answers)])
    assert result.exit_code == 2
    assert "unknown key 'public_ulr'" in result.output


def test_bad_answer_names_the_setting_and_writes_nothing(tmp_path):
    root = tmp_path / "root"
    result = CliRunner().invoke(cli, ["install", "--root", str(root), "--yes", "--public-url", "ftp://x"])
    assert result.exit_code == 2
    assert "server.public_url = 'ftp://x'" in result.output
    assert not (root / "etc/altkraft/config.toml").exists()


def test_install_over_an_existing_config_asks_nothing(installed):
    root, _ = installed
    result = run("install", "--root", str(root), input="")
    assert result.exit_code == 0, result.output
    assert f"keeping the existing {root}/etc/altkraft/config.toml" in result.output
    assert "nothing to change" in result.output
