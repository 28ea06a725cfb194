"""`altkraft backup` / `altkraft restore` through the real command, on the test database kind."""
from __future__ import annotations

import uuid

from altkraft_onprem import db
from altkraft_onprem.audience import subscribers
from tests.cli_helpers import altkraft, env_for

from .conftest import ACTOR


def test_backup_then_restore_brings_back_the_snapshot(env, tmp_path):
    before = f"kept-{uuid.uuid4().hex[:6]}@example.com"
    after = f"later-{uuid.uuid4().hex[:6]}@example.com"
    with db.write(env.engine) as conn:
        subscribers.create_subscriber(conn, ACTOR, {"email": before})
    target = tmp_path / "snapshot.bak"
    made = altkraft("backup", str(target), env=env_for(env.settings), timeout=120)
    assert made.returncode == 0, made.stderr
    assert target.stat().st_size > 0
    with db.write(env.engine) as conn:
        subscribers.create_subscriber(conn, ACTOR, {"email": after})
    env.engine.dispose()
    refused = altkraft("restore", str(target), env=env_for(env.settings))
    assert refused.returncode != 0 and "--yes" in refused.stderr
    done = altkraft("restore", str(target), "--yes", env=env_for(env.settings), timeout=120)
    assert done.returncode == 0, done.stderr
    env.engine.dispose()
    with db.read(env.engine) as conn:
        assert subscribers.find_by_email(conn, before) is not None
        assert subscribers.find_by_email(conn, after) is None


def test_restore_refuses_a_file_that_is_not_a_backup(env, tmp_path):
    bogus = tmp_path / "bogus.bak"
    bogus.write_text("hello")
    result = altkraft("restore", str(bogus), "--yes", env=env_for(env.settings))
    assert result.returncode == 1 and "not a" in result.stderr
