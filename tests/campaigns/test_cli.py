"""`altkraft campaign start|pause|resume|cancel|show ID` against the module's database."""
from __future__ import annotations

import json

import pytest

from tests.campaigns.helpers import make_campaign, make_list, make_message, progress
from tests.cli_helpers import altkraft, env_for


@pytest.fixture(scope="module")
def cli_env(env):
    relays = json.dumps([{"host": "127.0.0.1", "port": 2, "security": "none"}])
    return env_for(env.settings, ALTKRAFT_SMTP__RELAYS=relays)


@pytest.fixture(scope="module")
def campaign_id(env):
    list_id, _ = make_list(env, "CLI list", [{"email": "cli@example.org"}])
    return make_campaign(env, make_message(env), [list_id])


def test_start_pause_resume_cancel(env, cli_env, campaign_id):
    for action, state in (("start", "running"), ("pause", "paused"), ("resume", "running"),
                          ("cancel", "cancelled")):
        result = altkraft("campaign", action, str(campaign_id), env=cli_env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"campaign {campaign_id}: {state}"
        assert progress(env, campaign_id)["state"] == state


def test_show_prints_progress_as_json(cli_env, campaign_id):
    result = altkraft("campaign", "show", str(campaign_id), env=cli_env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["id"] == campaign_id and shown["stats"]["total"] == 1


def test_refused_move_is_one_line(env, cli_env):
    list_id, _ = make_list(env, "CLI list 2", [{"email": "cli2@example.org"}])
    draft = make_campaign(env, make_message(env), [list_id])
    result = altkraft("campaign", "resume", str(draft), env=cli_env)
    assert result.returncode == 1
    assert "a draft campaign cannot be resumed" in result.stderr
    assert "Traceback" not in result.stderr
