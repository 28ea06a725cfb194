"""Settings: load order, validation with one clear line (exit 2), generated example and docs."""
from __future__ import annotations

from pathlib import Path

import pytest

from altkraft_onprem import config
from altkraft_onprem.config import SETTINGS, ConfigError
from altkraft_onprem.config_docs import render_example, render_markdown
from tests.cli_helpers import altkraft

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE_PG = "postgresql://nobody@127.0.0.1:1/nothing"


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "altkraft.toml"
    path.write_text(text)
    return str(path)


def _assert_one_line(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- loading -------------------------------------------------------------------------------

def test_defaults_without_file_or_environment():
    settings = config.load(environ={})
    assert settings["server.bind"] == "127.0.0.1:8080" and settings["queue.backend"] == "sqlite"
    assert settings.database_url == f"sqlite:///{settings.data_dir / 'altkraft.db'}"


def test_environment_overrides_file(tmp_path):
    path = _write(tmp_path, '[server]\nworkers = 3\nbind = "0.0.0.0:9000"\n')
    settings = config.load(path, environ={"ALTKRAFT_SERVER__WORKERS": "7"})
    assert settings["server.workers"] == 7 and settings["server.bind"] == "0.0.0.0:9000"


def test_config_file_named_by_environment(tmp_path):
    path = _write(tmp_path, 'data_dir = "/srv/altkraft"\n')
    assert config.load(environ={"ALTKRAFT_CONFIG": path})["data_dir"] == "/srv/altkraft"


def test_top_level_key_from_environment():
    assert config.load(environ={"ALTKRAFT_LOG_LEVEL": "debug"})["log_level"] == "debug"


def test_list_of_tables_from_environment_json():
    settings = config.load(environ={"ALTKRAFT_SMTP__RELAYS": '[{"host": "relay.local", "port": 2525}]'})
    [relay] = settings["smtp.relays"]
    assert relay["host"] == "relay.local" and relay["port"] == 2525 and relay["security"] == "starttls"


def test_list_of_tables_from_file(tmp_path):
    path = _write(tmp_path, '[[dkim.keys]]\ndomain = "example.com"\nselector = "ak1"\nkey_file = "/k"\n')
    [key] = config.load(path, environ={})["dkim.keys"]
    assert key == {"domain": "example.com", "selector": "ak1", "key_file": "/k", "algorithm": "rsa-sha256"}


@pytest.mark.parametrize("environ,key", [
    ({"ALTKRAFT_SERVER__WORKERS": "many"}, "server.workers"),
    ({"ALTKRAFT_QUEUE__BACKEND": "kafka"}, "queue.backend"),
    ({"ALTKRAFT_SERVER__BIND": "localhost"}, "server.bind"),
    ({"ALTKRAFT_SERVER__PUBLIC_URL": "ftp://x"}, "server.public_url"),
    ({"ALTKRAFT_DATABASE__URL": "mysql://x/y"}, "database.url"),
    ({"ALTKRAFT_SMTP__RELAYS": '[{"port": 25}]'}, "smtp.relays"),
    ({"ALTKRAFT_QUEUE__NAME": "has space"}, "queue.name"),
    ({"ALTKRAFT_SECURITY__SESSION_HOURS": "0"}, "security.session_hours"),
])
def test_bad_value_names_the_key(environ, key):
    with pytest.raises(ConfigError) as info:
        config.load(environ=environ)
    assert info.value.key == key and "\n" not in str(info.value)


def test_bad_toml_names_the_file(tmp_path):
    path = _write(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="valid TOML"):
        config.load(path, environ={})


# --- the command line: one line, exit status 2 ------------------------------------------------

def test_check_accepts_a_good_file(tmp_path):
    path = _write(tmp_path, f'data_dir = "{tmp_path}"\n[server]\nworkers = 3\n')
    result = altkraft("--config", path, "config", "check")
    assert result.returncode == 0 and result.stdout.startswith("ok:")


def test_wrong_type_in_file(tmp_path):
    path = _write(tmp_path, '[server]\nworkers = "many"\n')
    _assert_one_line(altkraft("--config", path, "config", "check"), "server.workers", "'many'", "an integer")


def test_wrong_type_in_environment_stops_run(tmp_path):
    result = altkraft("run", env={"ALTKRAFT_DATA_DIR": str(tmp_path), "ALTKRAFT_SERVER__WORKERS": "many"})
    _assert_one_line(result, "server.workers", "'many'", "an integer")


def test_unknown_key_in_file(tmp_path):
    path = _write(tmp_path, '[server]\nbindd = "127.0.0.1:1"\n')
    _assert_one_line(altkraft("--config", path, "config", "check"), "server.bindd", "'127.0.0.1:1'",
                     "a known setting")


def test_unknown_key_in_file_stops_run(tmp_path):
    path = _write(tmp_path, f'data_dir = "{tmp_path}"\ncolour = "red"\n')
    _assert_one_line(altkraft("--config", path, "run"), "colour", "'red'", "a known setting")


def test_unknown_key_in_environment(tmp_path):
    result = altkraft("config", "check", env={"ALTKRAFT_SERVER__BINDD": "x"})
    _assert_one_line(result, "ALTKRAFT_SERVER__BINDD", "'x'", "a known ALTKRAFT_ variable")


def test_bad_choice(tmp_path):
    path = _write(tmp_path, '[queue]\nbackend = "kafka"\n')
    _assert_one_line(altkraft("--config", path, "config", "check"), "queue.backend", "'kafka'",
                     "'sqlite' or 'redis'")


def test_bad_choice_stops_run(tmp_path):
    result = altkraft("run", env={"ALTKRAFT_DATA_DIR": str(tmp_path), "ALTKRAFT_QUEUE__BACKEND": "kafka"})
    _assert_one_line(result, "queue.backend", "'kafka'", "'sqlite' or 'redis'")


def test_missing_config_file(tmp_path):
    _assert_one_line(altkraft("--config", str(tmp_path / "nope.toml"), "config", "check"),
                     "--config", "nope.toml", "an existing TOML file")


def test_unreachable_database_fails_check(tmp_path):
    result = altkraft("config", "check", env={"ALTKRAFT_DATABASE__URL": UNREACHABLE_PG})
    _assert_one_line(result, "database.url", "127.0.0.1:1", "expected a reachable database")


def test_unreachable_database_stops_run(tmp_path):
    result = altkraft("run", env={"ALTKRAFT_DATA_DIR": str(tmp_path), "ALTKRAFT_DATABASE__URL": UNREACHABLE_PG})
    _assert_one_line(result, "database.url", "127.0.0.1:1", "expected a reachable database")


def test_database_password_is_not_echoed(tmp_path):
    url = "postgresql://nobody:hunter2secret@127.0.0.1:1/nothing"
    result = altkraft("config", "check", env={"ALTKRAFT_DATABASE__URL": url})
    _assert_one_line(result, "database.url")
    assert "hunter2secret" not in result.stderr


# --- config.example.toml and docs/configuration.md are generated and complete -----------------

def test_example_file_is_the_generated_text():
    assert (ROOT / "config.example.toml").read_text() == render_example(), \
        "regenerate: altkraft config example > config.example.toml"


def test_configuration_docs_are_the_generated_text():
    assert (ROOT / "docs" / "configuration.md").read_text() == render_markdown(), \
        "regenerate: altkraft config docs > docs/configuration.md"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_setting_is_in_the_docs(setting):
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert f"`{setting.key}`" in docs and setting.env_name in docs
    for item in setting.item_fields:
        assert f"`{setting.key}[].{item.key}`" in docs


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.key)
def test_every_setting_is_in_the_example(setting):
    example = (ROOT / "config.example.toml").read_text()
    name = setting.key.rpartition(".")[2]
    assert setting.env_name in example
    assert (f"#[[{setting.key}]]" in example) if setting.item_fields else (f"#{name} = " in example)


def test_example_parses_as_valid_settings_when_uncommented(tmp_path):
    lines = []
    for line in render_example().splitlines():
        stripped = line[1:] if line.startswith("#") and not line.startswith("# ") and line != "#" else line
        lines.append(stripped)
    path = _write(tmp_path, "\n".join(lines))
    settings = config.load(path, environ={})
    assert settings["smtp.relays"][0]["host"] == "smtp.example.com"
