"""The circuit breaker of a mailbox provider: policy blocks, reputation deferrals and complaints
about a campaign's last messages there open it; while it is open the senders hold that
provider's rows (never sent, never lost); the campaign page shows why; a person resumes it
(audited) and each held message then goes out exactly once."""
from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.models import audit_log
from altkraft_onprem.campaigns import breakers
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.inbound import intake, monitor, service
from altkraft_onprem.inbound.models import inbound_messages
from tests.campaigns.helpers import make_campaign, make_list, make_message, progress, start
from tests.conftest import csrf_token
from tests.inbound import reports
from tests.inbound.conftest import FBL, inbound_settings, send_campaign

GMAIL = [{"email": f"reader{i}@gmail.com"} for i in range(10)]
ELSEWHERE = [{"email": f"reader{i}@example.net"} for i in range(5)]


@pytest.fixture(scope="module")
def world(env, sink):
    settings = inbound_settings(env, sink, inbound__breaker_messages=10, inbound__breaker_percent=30.0)
    first = send_campaign(env, settings, GMAIL + ELSEWHERE, "Breaker")
    originals = {p["email"]: sink.by_recipient(p["email"])[0] for p in GMAIL}
    return {**first, "settings": settings, "originals": originals}


def report(env, world, raw: bytes, rcpt: str) -> dict:
    with db.write(env.engine) as conn:
        stored = intake.store(conn, raw, source="replay", rcpt=rcpt)
    service.process_pending(env.engine, world["settings"], ids=[stored])
    with db.read(env.engine) as conn:
        return service.outcome(conn, stored)


def block(env, world, sink, index: int) -> dict:
    message = world["originals"][GMAIL[index]["email"]]
    return report(env, world, reports.dsn(message.raw, recipient=GMAIL[index]["email"], status="5.7.1",
                                          diagnostic="smtp; 550 5.7.1 blocked using zen.spamhaus.org"),
                  message.envelope_from)


def open_breakers(env) -> dict:
    with db.read(env.engine) as conn:
        return breakers.open_ones(conn)


def audit(env, action: str) -> list[str]:
    with db.read(env.engine) as conn:
        return list(conn.execute(select(audit_log.c.target_id).where(audit_log.c.action == action)).scalars())


def test_a_reputation_deferral_is_counted_but_not_a_bounce(env, world, sink):
    message = world["originals"][GMAIL[0]["email"]]
    found = report(env, world, reports.dsn(
        message.raw, recipient=GMAIL[0]["email"], status="4.7.0", action="delayed",
        diagnostic="smtp; 421 4.7.0 Try again later, closing connection (our IP's reputation)"),
        message.envelope_from)
    assert (found["state"], found["outcome"], found["bounce_class"]) == ("ignored", "deferred", "policy")
    assert "bounce_id" not in found
    assert open_breakers(env) == {}                # 1 of the last 10 there: 10 %


def test_blocks_and_complaints_over_the_line_open_the_breaker(env, world, sink):
    block(env, world, sink, 1)
    assert open_breakers(env) == {}                # 20 %
    report(env, world, reports.arf(world["originals"][GMAIL[2]["email"]].raw), FBL)
    stopped = open_breakers(env)
    assert list(stopped) == ["gmail"]              # 30 %: the deferral, the block, the complaint
    assert "3 of the last 10 messages" in stopped["gmail"] and "30.0 %" in stopped["gmail"]
    assert audit(env, "breaker.open") == ["gmail"]
    with db.read(env.engine) as conn:
        kinds = [(a["kind"], a["level"], a["provider"]) for a in monitor.list_alerts(conn)]
    assert ("breaker", "stopped", "gmail") in kinds


def test_the_inbound_page_lists_the_breaker_alert(env, world, client):
    env.login(client, env.user("Administrator"))
    page = client.get("/deliverability/inbound").get_data(as_text=True)
    row = next(r for r in page.split("<tr>") if "sending to the provider paused" in r)
    assert "<td>stopped</td>" in row and "Gmail" in row


def test_other_providers_are_not_judged_by_gmail(env, world, sink):
    """example.net is judged on its own last messages: with a window its 5 fill, nothing came
    back from there, so its breaker stays closed, though 3 of the campaign's messages (to
    Gmail) were refused, deferred or reported — 60 % of 5 had they counted."""
    settings = world["settings"].replace(inbound__breaker_messages=len(ELSEWHERE))
    with db.write(env.engine) as conn:
        assert monitor.check_breaker(conn, settings, world["campaign_id"], "other") is False
    assert set(open_breakers(env)) == {"gmail"}


@pytest.fixture(scope="module")
def second(env, world, sink):
    """A new campaign to the same people while Gmail's breaker is open, sent by two forked
    sender processes (their records go through the journal and the group commit)."""
    sink.clear()
    list_id, _ = make_list(env, "Breaker second", [{"email": p["email"].replace("reader", "second")}
                                                    for p in GMAIL + ELSEWHERE])
    campaign_id = make_campaign(env, make_message(env), [list_id], name="Second")
    start(env, world["settings"], campaign_id)
    run_campaign(world["settings"], env.engine, campaign_id, processes=2)
    return campaign_id


def test_an_open_breaker_holds_that_providers_rows(env, world, sink, second):
    sent_to = Counter(r for m in sink.messages for r in m.envelope_to)
    assert set(sent_to) == {p["email"].replace("reader", "second") for p in ELSEWHERE}
    assert set(sent_to.values()) == {1}
    with db.read(env.engine) as conn:
        rows = conn.execute(select(deliveries.c.state, deliveries.c.reply, deliveries.c.attempts,
                                   deliveries.c.next_attempt_at)
                            .where(deliveries.c.campaign_id == second, deliveries.c.state == "queued")).all()
        held = breakers.held(conn, second)
    assert len(rows) == 10 and held == {"gmail": 10}
    assert all(r.reply.startswith("held: sending to gmail is paused") and r.attempts == 0 and r.next_attempt_at
               for r in rows)
    assert progress(env, second)["state"] == "running"      # waits for them


def test_the_campaign_page_says_why_and_offers_resume(env, world, second, client):
    env.login(client, env.user("Administrator"))
    page = client.get(f"/campaigns/{second}").get_data(as_text=True)
    assert 'id="breaker-gmail"' in page and 'id="resume-gmail"' in page
    assert "Sending to Gmail is paused" in page
    assert "10 recipients of this campaign wait for it." in page


def test_an_analyst_sees_it_without_the_resume_button(env, world, second, client):
    env.login(client, env.user("Analyst"))
    page = client.get(f"/campaigns/{second}").get_data(as_text=True)
    assert 'id="breaker-gmail"' in page and 'id="resume-gmail"' not in page
    token = csrf_token(page)
    answer = client.post("/campaigns/providers/gmail/resume", data={"csrf_token": token})
    assert answer.status_code == 403
    assert open_breakers(env) != {}


def test_the_api_lists_it_and_refuses_what_is_not_open(env, world, client):
    token = env.token("Administrator")
    headers = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/breakers", headers=headers).get_json()
    assert [(b["provider"], b["state"], b["figures"]["blocked"]) for b in listed] == [("gmail", "open", 3)]
    assert client.post("/api/v1/breakers/yandex/resume", headers=headers).status_code == 404
    assert client.post("/api/v1/breakers/nonsense/resume", headers=headers).status_code == 404


def test_resume_is_audited_and_each_held_message_goes_out_once(env, world, sink, second, client):
    env.login(client, env.user("Administrator"))
    page = client.get(f"/campaigns/{second}").get_data(as_text=True)
    answer = client.post("/campaigns/providers/gmail/resume",
                         data={"csrf_token": csrf_token(page), "campaign_id": second})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/campaigns/{second}")
    assert open_breakers(env) == {}
    assert audit(env, "breaker.close") == ["gmail"]
    with db.read(env.engine) as conn:
        assert breakers.held(conn, second) == {}
        waiting = conn.execute(select(deliveries.c.next_attempt_at).where(
            deliveries.c.campaign_id == second, deliveries.c.state == "queued")).scalars().all()
    assert len(waiting) == 10 and set(waiting) == {None}
    run_campaign(world["settings"], env.engine, second, processes=2)
    sent_to = Counter(r for m in sink.messages for r in m.envelope_to)
    assert len(sent_to) == 15 and set(sent_to.values()) == {1}
    assert progress(env, second)["state"] == "finished"
    token = env.token("Administrator")
    again = client.post("/api/v1/breakers/gmail/resume", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 409


def test_after_a_resume_only_what_was_sent_since_counts(env, world, sink):
    """The first campaign's blocks were judged already: one more block about it does not trip
    the breaker again (its messages were sent before the resume)."""
    block(env, world, sink, 3)
    assert open_breakers(env) == {}
    with db.read(env.engine) as conn:
        deferred = conn.execute(select(inbound_messages.c.outcome).where(
            inbound_messages.c.outcome == "deferred")).scalars().all()
    assert deferred == ["deferred"]
