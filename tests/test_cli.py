"""The `altkraft` command: users, tokens, migrations — as an operator runs them."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from tests.cli_helpers import altkraft, empty_database, env_for
from tests.conftest import PASSWORD


def _email(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"


def test_user_create_reads_password_from_stdin(env):
    email = _email()
    result = altkraft("user", "create", "--email", email, "--role", "Editor", "--password-stdin",
                      env=env_for(env.settings), input=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    with db.write(env.engine) as conn:
        user_id = access.user_id_by_email(conn, email)
        assert access.get_user(conn, user_id)["role"] == "Editor"
        assert access.authenticate(conn, email, PASSWORD, "127.0.0.1", max_failures=5,
                                   lockout=timedelta(minutes=1)) == user_id


def test_user_create_is_audited_as_the_cli_operator(env):
    email = _email()
    altkraft("user", "create", "--email", email, "--role", "Viewer", "--password-stdin",
             env={**env_for(env.settings), "USER": "opsperson"}, input=PASSWORD + "\n")
    with db.read(env.engine) as conn:
        [entry] = [e for e in access.audit_entries(conn, action="user.create") if e["details"]["email"] == email]
    assert entry["actor"] == "cli:opsperson"


def test_user_create_with_short_password_says_why(env):
    result = altkraft("user", "create", "--email", _email(), "--password-stdin",
                      env=env_for(env.settings), input="short\n")
    assert result.returncode == 1
    assert "at least 10 characters" in result.stderr and "Traceback" not in result.stderr


def test_user_create_with_unknown_role_names_the_known_ones(env):
    result = altkraft("user", "create", "--email", _email(), "--role", "Boss", "--password-stdin",
                      env=env_for(env.settings), input=PASSWORD + "\n")
    assert result.returncode == 1 and "Boss" in result.stderr and "Editor" in result.stderr


def test_token_create_prints_the_token_alone_on_the_last_line(env):
    user = env.user("Analyst")
    result = altkraft("token", "create", "--email", user["email"], env=env_for(env.settings))
    assert result.returncode == 0, result.stderr
    token = result.stdout.splitlines()[-1]
    assert token.startswith("ak_") and " " not in token
    me = env.app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["email"] == user["email"]
    assert me.get_json()["role"] == "Analyst"


def test_token_create_for_unknown_user_fails_clearly(env):
    result = altkraft("token", "create", "--email", "nobody@example.com", env=env_for(env.settings))
    assert result.returncode == 1 and "nobody@example.com" in result.stderr


@pytest.fixture()
def empty(tmp_path):
    with empty_database(tmp_path) as url:
        yield {"ALTKRAFT_DATA_DIR": str(tmp_path), "ALTKRAFT_DATABASE__URL": url}


def test_db_status_reports_pending_migrations(empty):
    result = altkraft("db", "status", env=empty)
    assert result.returncode == 1 and "pending: 0001_foundation" in result.stdout


def test_db_upgrade_migrates_then_status_is_up_to_date(empty):
    upgrade = altkraft("db", "upgrade", env=empty)
    assert upgrade.returncode == 0 and upgrade.stdout.startswith("migrated:"), upgrade.stderr
    status = altkraft("db", "status", env=empty)
    assert status.returncode == 0 and "up to date" in status.stdout


def test_db_upgrade_twice_is_harmless(empty):
    altkraft("db", "upgrade", env=empty)
    again = altkraft("db", "upgrade", env=empty)
    assert again.returncode == 0 and "already up to date" in again.stdout


def test_user_create_refuses_an_unmigrated_database(empty):
    result = altkraft("user", "create", "--email", _email(), "--password-stdin", env=empty,
                      input=PASSWORD + "\n")
    assert result.returncode == 2 and "altkraft db upgrade" in result.stderr


def test_help_lists_every_command():
    result = altkraft("--help")
    for command in ("run", "worker", "db", "user", "token", "config"):
        assert f"  {command} " in result.stdout
