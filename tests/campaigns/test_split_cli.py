"""`altkraft campaign winner ID [--variant N]` against the module's database."""
from __future__ import annotations

import json
from collections import Counter

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.campaigns.models import deliveries
from tests.campaigns.helpers import make_campaign, make_list, make_message, start
from tests.cli_helpers import altkraft, env_for

RELAYS = [{"host": "127.0.0.1", "port": 2, "security": "none"}]
SPLIT = {"variants": [{"subject": "A"}, {"subject": "B"}], "test_percent": 20}


def _campaign(env, started: bool) -> int:
    list_id, _ = make_list(env, f"CLI split {started}", [{"email": f"cli-ab{i}-{started}@example.org"}
                                              for i in range(10)])
    campaign_id = make_campaign(env, make_message(env), [list_id], split_test=SPLIT)
    if started:
        start(env, env.settings.replace(smtp__relays=RELAYS), campaign_id)
    return campaign_id


def test_winner_with_a_variant_releases_the_held_rows(env):
    campaign_id = _campaign(env, started=True)
    result = altkraft("campaign", "winner", str(campaign_id), "--variant", "2",
                      env=env_for(env.settings, ALTKRAFT_SMTP__RELAYS=json.dumps(RELAYS)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"campaign {campaign_id}: variant B wins"
    with db.read(env.engine) as conn:
        rows = conn.execute(select(deliveries.c.state, deliveries.c.variant, deliveries.c.test_group)
                            .where(deliveries.c.campaign_id == campaign_id)).all()
    assert Counter((s, v) for s, v, test in rows if not test) == {("queued", 2): 8}


def test_winner_of_a_draft_is_one_line(env):
    campaign_id = _campaign(env, started=False)
    result = altkraft("campaign", "winner", str(campaign_id), env=env_for(env.settings))
    assert result.returncode == 1
    assert "a draft campaign has no split test running" in result.stderr
    assert "Traceback" not in result.stderr
