"""One send run per campaign: a run finds the campaign held by another and ends at once; a run
whose process is gone, or whose lease ran out, leaves the campaign to the next."""
from __future__ import annotations

from datetime import timedelta

from altkraft_onprem import db
from altkraft_onprem.campaigns import runs
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.holders import HOST, owner_name
from tests.campaigns.helpers import (
    make_campaign,
    make_list,
    make_message,
    progress,
    sending_settings,
    start,
)
from tests.delivery.test_journal import _dead_pid
from tests.smtp_sink import SmtpSink

OTHER_HOST = f"other-{HOST}:4242:0badf00d.1234abcd"


def _campaign(env, sink, name: str):
    settings, _ = sending_settings(env, sink)
    list_id, _ = make_list(env, name, [{"email": f"{name}-{i}@example.org"} for i in range(3)])
    campaign_id = make_campaign(env, make_message(env), [list_id])
    start(env, settings, campaign_id)
    return settings, campaign_id


def test_a_second_run_ends_at_once_while_another_holds_the_campaign(env):
    sink = SmtpSink().start()
    try:
        settings, campaign_id = _campaign(env, sink, "held")
        other = owner_name()                     # a living process: this one, another run
        with db.write(env.engine) as conn:
            assert runs.take(conn, campaign_id, other, 300)
        assert run_campaign(settings, env.engine, campaign_id, processes=1) == []
        assert sink.messages == [] and progress(env, campaign_id)["sent"] == 0
        with db.write(env.engine) as conn:
            runs.release(conn, campaign_id, other)
        run_campaign(settings, env.engine, campaign_id, processes=1)
        assert progress(env, campaign_id)["sent"] == 3
        with db.read(env.engine) as conn:
            assert not runs.held(conn, campaign_id)        # a finished run lets go
    finally:
        sink.stop()


def test_the_lease_of_a_run_that_died_here_is_free_at_once(env):
    campaign_id = make_campaign(env, make_message(env), [make_list(env, "dead", [])[0]])
    with db.write(env.engine) as conn:
        assert runs.take(conn, campaign_id, owner_name(pid=_dead_pid()), 300)
        assert runs.take(conn, campaign_id, owner_name(), 300)


def test_another_hosts_run_holds_until_its_lease_runs_out(env):
    campaign_id = make_campaign(env, make_message(env), [make_list(env, "remote", [])[0]])
    now = utcnow()
    with db.write(env.engine) as conn:
        assert runs.take(conn, campaign_id, OTHER_HOST, 300, now=now)
        assert not runs.take(conn, campaign_id, owner_name(), 300, now=now + timedelta(seconds=299))
        assert runs.take(conn, campaign_id, owner_name(), 300, now=now + timedelta(seconds=301))
