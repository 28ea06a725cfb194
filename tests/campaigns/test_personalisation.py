"""Broken personalisation never goes out (issue 15 item 2).

One rule for previews, test sends and campaign sends: a variable without a value and without
a default is an error. A campaign is checked at its start against its pinned version and a
sample of its real recipients; a row whose render fails at send time ends `failed` with the
reason, and the campaign page says how many failed and why. Real SMTP sink, real routes.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import fields, subscribers
from altkraft_onprem.campaigns import jobs
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.campaigns.models import campaigns as campaign_table
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.messages import service as messages
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    progress,
    sending_settings,
    start,
)
from tests.conftest import csrf_token

PROMO_HTML = "<html><body><p>Hello</p>\n<p>Promo code: {{ data.promo }}</p></body></html>"
TIER_HTML = "<html><body><p>Hello</p>\n<p>Your tier: {{ subscriber.custom.tier }}</p></body></html>"


@pytest.fixture(scope="module")
def settings(env, sink):
    found, _ = sending_settings(env, sink)
    env.app.config["ALTKRAFT_SETTINGS"] = found
    with db.write(env.engine) as conn:
        fields.ensure_field(conn, ACTOR, "tier")
    return found


@pytest.fixture(scope="module")
def api(env, settings):
    token = env.token("Manager")
    client = env.app.test_client()

    def call(method: str, path: str, json=None):
        return client.open("/api/v1" + path, method=method, json=json,
                           headers={"Authorization": f"Bearer {token}"})
    return call


def _message(env, name: str, html: str, data_source: dict | None = None) -> int:
    with db.write(env.engine) as conn:
        message_id, _ = messages.create_message(conn, ACTOR, name, subject=f"{name} news",
                                                html=html, data_source=data_source)
    return message_id


def _campaign(env, name: str, html: str, people: list[dict], data_source: dict | None = None,
              **extra) -> int:
    list_id, _ = make_list(env, name, people)
    return make_campaign(env, _message(env, name, html, data_source), [list_id], name=name, **extra)


def _ledger_rows(env, campaign_id: int) -> int:
    with db.read(env.engine) as conn:
        return len(conn.execute(deliveries.select().where(deliveries.c.campaign_id == campaign_id)).all())


def test_start_refuses_a_data_variable_without_a_value_naming_it(env, api, sink):
    emails = [f"promo{i}@example.net" for i in range(3)]
    campaign_id = _campaign(env, "Promo", PROMO_HTML, [{"email": e} for e in emails],
                            {"kind": "document", "document": {"discount": 10}})
    response = api("POST", f"/campaigns/{campaign_id}/start")
    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert "data.promo has no value" in problem["detail"] and "html line 2" in problem["detail"]
    assert progress(env, campaign_id)["state"] == "draft"
    assert _ledger_rows(env, campaign_id) == 0
    assert not any(sink.by_recipient(e) for e in emails)


def test_start_refuses_when_real_recipients_lack_a_value_naming_one(env, api, sink):
    campaign_id = _campaign(env, "Tiers", TIER_HTML,
                            [{"email": f"tier{i}@example.net"} for i in range(40)])
    problem = api("POST", f"/campaigns/{campaign_id}/start").get_json()
    assert "subscriber.custom.tier has no value" in problem["detail"]
    assert "@example.net" in problem["detail"]          # names a recipient it was tried for
    assert progress(env, campaign_id)["state"] == "draft"


def test_a_default_lets_the_same_campaign_go(env, api, sink):
    html = PROMO_HTML.replace("{{ data.promo }}", "{{ data.promo | default('none today') }}")
    campaign_id = _campaign(env, "Defaulted", html, [{"email": "defaulted@example.net"}],
                            {"kind": "document", "document": {}})
    assert api("POST", f"/campaigns/{campaign_id}/start").status_code == 200
    (message,) = sink.by_recipient("defaulted@example.net")
    assert "Promo code: none today" in message.get_body(("html",)).get_content()


def test_a_row_that_cannot_be_rendered_at_send_time_fails_with_the_reason(env, settings, sink):
    people = [{"email": f"late{i}@example.net", "custom": {"tier": "Gold"}} for i in range(3)]
    list_id, ids = make_list(env, "Late", people)
    campaign_id = make_campaign(env, _message(env, "Late", TIER_HTML), [list_id], name="Late")
    start(env, settings, campaign_id)                # every recipient has a tier at the start
    with db.write(env.engine) as conn:               # … one loses it before the send
        subscribers.update_subscriber(conn, ACTOR, ids[1], {"custom": {"tier": None}})
    run_campaign(settings, env.engine, campaign_id, processes=1)

    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["failed"]) == ("finished", 2, 1)
    assert not sink.by_recipient("late1@example.net")          # never half-rendered
    assert "Your tier: Gold" in sink.by_recipient("late0@example.net")[0].get_body(("html",)).get_content()
    with db.read(env.engine) as conn:
        (failed,) = campaigns.deliveries_page(conn, campaign_id, "failed")
    assert failed["email"] == "late1@example.net"
    assert "subscriber.custom.tier has no value" in failed["reply"]


def test_the_campaign_page_shows_how_many_failed_and_why(env, settings, client):
    campaign_id = next(c["id"] for c in _campaigns(env) if c["name"] == "Late")
    env.login(client, env.user("Viewer"))
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="failure-reasons"' in page
    section = page[page.index('id="failure-reasons"'):]
    assert "subscriber.custom.tier has no value" in section[:section.index("</table>")]
    assert '<td class="count">1</td>' in section[:section.index("</table>")]


def test_a_scheduled_campaign_that_cannot_render_goes_back_to_draft_with_the_reason(env, settings, sink):
    later = (utcnow() + timedelta(hours=1)).isoformat()
    broken = _campaign(env, "Scheduled broken", PROMO_HTML, [{"email": "sched-broken@example.net"}],
                       {"kind": "document", "document": {}}, schedule_at=later)
    fine = _campaign(env, "Scheduled fine", PROMO_HTML, [{"email": "sched-fine@example.net"}],
                     {"kind": "document", "document": {"promo": "SPRING"}}, schedule_at=later)
    with db.write(env.engine) as conn:
        for campaign_id in (broken, fine):
            campaigns.schedule(conn, ACTOR, settings, campaign_id)
        conn.execute(campaign_table.update().where(campaign_table.c.id.in_([broken, fine]))
                     .values(schedule_at=utcnow() - timedelta(minutes=1)))
    with env.app.app_context():
        assert jobs.start_due() == [fine]
    assert progress(env, fine)["state"] == "finished"          # one refusal blocks no other
    with db.read(env.engine) as conn:
        refused = campaigns.get_campaign(conn, broken)
    assert refused["state"] == "draft" and "data.promo has no value" in refused["pause_reason"]
    assert not sink.by_recipient("sched-broken@example.net")


def test_the_start_button_says_why_it_refused(env, settings, client):
    campaign_id = _campaign(env, "Button", PROMO_HTML, [{"email": "button@example.net"}],
                            {"kind": "document", "document": {}})
    env.login(client, env.user("Manager"))
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    response = client.post(f"/campaigns/{campaign_id}/start", data={"csrf_token": csrf_token(page)},
                           follow_redirects=True)
    assert "data.promo has no value" in response.get_data(as_text=True)
    assert progress(env, campaign_id)["state"] == "draft"


def _campaigns(env) -> list[dict]:
    with db.read(env.engine) as conn:
        return campaigns.list_campaigns(conn)
