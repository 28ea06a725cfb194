"""`altkraft import FILE --list NAME`: the real command against the module's database."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.audience.models import subscriber_lists, subscribers
from tests.cli_helpers import altkraft, env_for


def test_cli_import_with_progress_and_rejected_file(env, people, tmp_path):
    tag = uuid.uuid4().hex[:8]
    name = f"cli-{tag}"
    list_id = people.list(name)
    source = tmp_path / "people.csv"
    source.write_text(f"email,first_name\ncli-{tag}@example.com,Cli\nbroken,X\n", encoding="utf-8")
    result = altkraft("import", str(source), "--list", name, "--mode", "upsert",
                      env=env_for(env.settings))
    assert result.returncode == 0, result.stderr
    assert "added 1" in result.stdout and "invalid 1" in result.stdout
    assert "import #" in result.stderr                       # the progress bar's label
    rejected = tmp_path / "people.csv.rejected.csv"
    assert "broken" in rejected.read_text(encoding="utf-8-sig")
    assert source.exists()                                    # the operator's file is left alone
    with db.read(env.engine) as conn:
        status = conn.execute(select(subscriber_lists.c.status).join(
            subscribers, subscribers.c.id == subscriber_lists.c.subscriber_id).where(
            subscribers.c.email == f"cli-{tag}@example.com", subscriber_lists.c.list_id == list_id)).scalar()
    assert status == "confirmed"


def test_cli_import_with_unknown_list_fails_in_one_line(env, tmp_path):
    source = tmp_path / "people.csv"
    source.write_text("email\na@example.com\n")
    result = altkraft("import", str(source), "--list", "no such list " + uuid.uuid4().hex,
                      env=env_for(env.settings))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: no list named")


def test_cli_import_with_bad_mapping_json(env, tmp_path):
    source = tmp_path / "people.csv"
    source.write_text("email\na@example.com\n")
    result = altkraft("import", str(source), "--mapping", "{nope", env=env_for(env.settings))
    assert result.returncode == 1 and "--mapping is not valid JSON" in result.stderr
