"""Warm-up of a new sending domain or IP: the ledger holds what is over the day's quota per
mailbox provider and releases it the next day, the most engaged first (real SMTP sink)."""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.deliverability import warmup
from altkraft_onprem.delivery.warmup import warmups
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    progress,
    record_events,
    sending_settings,
    start,
)
from tests.conftest import csrf_token

CURVE = [2, 4, 8]
_lists = iter(range(1000))


@pytest.fixture(scope="module")
def sink(module_smtp_sink):
    return module_smtp_sink


_domains = iter(range(1000))


def warm(env, sink, started_on: date | None = None, curve=CURVE, **extra):
    """Settings with a sending domain of its own (quotas are per domain and day) in its
    warm-up; `settings.domain` is its name."""
    started = (started_on or utcnow().date()).isoformat()
    domain = f"w{next(_domains)}.example.com"
    settings, _ = sending_settings(env, sink, delivery__processes=1,
                                   deliverability__warmup_curve=curve,
                                   delivery__sending_domains=[{"domain": domain, "warmup": True,
                                                               "warmup_started_on": started}], **extra)
    settings.domain = domain
    return settings


def campaign(env, settings, list_id: int, **extra) -> int:
    return make_campaign(env, make_message(env), [list_id], from_email=f"news@{settings.domain}",
                        **extra)


def audience(env, gmail=5, outlook=3, other=2) -> tuple[int, dict[str, list[int]]]:
    n = next(_lists)
    people = ([{"email": f"w{n}-g{i}@gmail.com"} for i in range(gmail)] +
              [{"email": f"w{n}-o{i}@outlook.com"} for i in range(outlook)] +
              [{"email": f"w{n}-x{i}@example.org"} for i in range(other)])
    list_id, ids = make_list(env, f"Warm {n}", people)
    return list_id, {"gmail": ids[:gmail], "outlook": ids[gmail:gmail + outlook],
                     "other": ids[gmail + outlook:]}


def states(env, campaign_id: int) -> dict[int, str]:
    with db.read(env.engine) as conn:
        return dict(conn.execute(select(deliveries.c.subscriber_id, deliveries.c.state).where(
            deliveries.c.campaign_id == campaign_id)).all())


def release_on(env, settings, campaign_id: int, day_offset: int) -> int:
    with db.write(env.engine) as conn:
        return warmup.release(conn, settings, campaign_id, now=utcnow() + timedelta(days=day_offset))


# --- the rules ------------------------------------------------------------------------------

def test_the_quota_follows_the_curve_and_ends_with_it(env, sink):
    today = utcnow().date()
    settings = warm(env, sink, started_on=today - timedelta(days=1))
    [found] = warmups(settings, f"news@{settings.domain.upper()}", today)
    assert (found.key, found.day, found.days, found.quota) == (f"domain:{settings.domain}", 2, 3, 4)
    assert warmups(settings, f"news@{settings.domain}", today + timedelta(days=2)) == []
    assert warmups(settings, "news@other.example", today) == []


def test_an_ip_warm_up_counts_every_campaign(env, sink):
    today = utcnow().date()
    settings, _ = sending_settings(env, sink, deliverability__warmup_curve=[10, 20],
                                   deliverability__warmup_ips=[{"ip": "192.0.2.25",
                                                                "started_on": today.isoformat()}])
    [found] = warmups(settings, "news@anything.example", today)
    assert (found.key, found.quota) == ("ip:192.0.2.25", 10)


def test_a_bad_curve_is_refused_naming_the_setting(env):
    with pytest.raises(Exception) as caught:
        env.settings.replace(deliverability__warmup_curve=[10, 0])
    assert "deliverability.warmup_curve" in str(caught.value)


# --- holding and releasing ------------------------------------------------------------------

def test_over_the_days_quota_is_held_per_provider_and_the_engaged_go_first(env, sink):
    settings = warm(env, sink)
    list_id, people = audience(env)
    earlier = campaign(env, settings, list_id)
    start(env, settings.replace(delivery__sending_domains=[]), earlier)   # not warming then
    run_campaign(settings, env.engine, earlier, processes=1)
    # the last two Gmail readers opened and clicked that earlier campaign
    engaged = people["gmail"][-2:]
    record_events(env, [{"at": utcnow(), "kind": kind, "campaign_id": earlier, "subscriber_id": sid,
                         "version_id": 1, "link_index": 0 if kind == "click" else None}
                        for sid in engaged for kind in ("open", "click")])
    before = len(sink.messages)

    campaign_id = campaign(env, settings, list_id)
    start(env, settings, campaign_id)
    assert set(states(env, campaign_id).values()) == {"held"}
    run_campaign(settings, env.engine, campaign_id, processes=1)
    found = states(env, campaign_id)
    sent = {sid for sid, state in found.items() if state == "sent"}
    assert sent == {*engaged, *people["outlook"][:2], *people["other"]}
    assert len(sink.messages) - before == 6
    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["held"], state["remaining"]) == ("running", 6, 4, 4)
    with db.read(env.engine) as conn:
        shown = warmup.summary(conn, settings, campaign_id)
    assert shown["warmups"] == [{"kind": "domain", "name": settings.domain, "day": 1, "days": 3, "quota": 2}]
    assert [(p["provider"], p["held"], p["released_today"], p["quota"]) for p in shown["providers"]] == [
        ("gmail", 3, 2, 2), ("outlook", 1, 2, 2)]

    # Nothing more today, however often it is asked.
    assert release_on(env, settings, campaign_id, 0) == 0
    # Tomorrow (day 2, quota 4): the rest goes, each once.
    assert release_on(env, settings, campaign_id, 1) == 4
    run_campaign(settings, env.engine, campaign_id, processes=2)
    state = progress(env, campaign_id)
    assert (state["state"], state["sent"], state["held"]) == ("finished", 10, 0)
    assert sorted(Counter(sink.recipients()[before:]).values()) == [1] * 10


def test_campaigns_from_one_domain_share_its_quota(env, sink):
    settings = warm(env, sink)
    list_id, _ = audience(env, gmail=3, outlook=0, other=0)
    first = campaign(env, settings, list_id)
    second = campaign(env, settings, list_id)
    for campaign_id in (first, second):
        start(env, settings, campaign_id)
        run_campaign(settings, env.engine, campaign_id, processes=1)
    assert (progress(env, first)["sent"], progress(env, second)["sent"]) == (2, 0)
    woken = warmup.release_running(env.engine, settings, now=utcnow() + timedelta(days=1))
    assert woken == [first, second]          # day 2: 4 Gmail messages, the first campaign's first
    assert (progress(env, first)["held"], progress(env, second)["held"]) == (0, 0)


def test_when_the_warm_up_ends_everything_held_goes(env, sink):
    settings = warm(env, sink)
    list_id, _ = audience(env, gmail=6, outlook=0, other=0)
    campaign_id = campaign(env, settings, list_id)
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    assert progress(env, campaign_id)["held"] == 4
    assert release_on(env, settings, campaign_id, len(CURVE)) == 4     # the day after the curve


def test_switching_the_warm_up_off_releases_the_rest(env, sink):
    settings = warm(env, sink)
    list_id, _ = audience(env, gmail=4, outlook=0, other=0)
    campaign_id = campaign(env, settings, list_id)
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    off = settings.replace(delivery__sending_domains=[{"domain": settings.domain, "warmup": False}])
    run_campaign(off, env.engine, campaign_id, processes=1)
    assert (progress(env, campaign_id)["state"], progress(env, campaign_id)["sent"]) == ("finished", 4)


def test_cancel_cancels_the_held_rows(env, sink):
    settings = warm(env, sink)
    list_id, _ = audience(env, gmail=4, outlook=0, other=0)
    campaign_id = campaign(env, settings, list_id)
    start(env, settings, campaign_id)
    with db.write(env.engine) as conn:
        campaigns.cancel(conn, ACTOR, campaign_id)
    assert release_on(env, settings, campaign_id, 1) == 0
    assert set(states(env, campaign_id).values()) == {"cancelled"}


def test_a_split_tests_test_portion_goes_first(env, sink):
    settings = warm(env, sink, curve=[3, 100])
    list_id, people = audience(env, gmail=10, outlook=0, other=0)
    campaign_id = campaign(env, settings, list_id, split_test={
        "variants": [{"subject": "A"}, {"subject": "B"}], "test_percent": 30, "wait_hours": 0})
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    with db.read(env.engine) as conn:
        rows = conn.execute(select(deliveries.c.test_group, deliveries.c.state).where(
            deliveries.c.campaign_id == campaign_id)).all()
    assert sorted(state for group, state in rows if group) == ["sent"] * 3
    # the winner's rows wait for the warm-up too: still held (for it) after the decision
    assert all(state == "held" for group, state in rows if not group)
    assert progress(env, campaign_id)["sent"] == 3
    assert release_on(env, settings, campaign_id, 1) == 7
    run_campaign(settings, env.engine, campaign_id, processes=1)
    assert progress(env, campaign_id)["state"] == "finished"


def test_a_local_time_row_due_tomorrow_is_not_counted_today(env, sink):
    settings = warm(env, sink, curve=[5])
    n = next(_lists)
    later = (utcnow() + timedelta(hours=3)).strftime("%H:%M")
    list_id, _ = make_list(env, f"Warm local {n}", [{"email": f"wl{n}-{i}@gmail.com", "timezone": "Etc/UTC"}
                                                    for i in range(3)])
    campaign_id = campaign(env, settings, list_id,
                                send_at_local={"time": later, "quiet_hours": None})
    start(env, settings, campaign_id)
    released = release_on(env, settings, campaign_id, 0)
    due = campaigns_due(env, campaign_id)
    assert released == (3 if due.date() == utcnow().date() else 0)


def campaigns_due(env, campaign_id):
    with db.read(env.engine) as conn:
        return conn.execute(select(deliveries.c.next_attempt_at).where(
            deliveries.c.campaign_id == campaign_id).limit(1)).scalar()


# --- the API and the page -------------------------------------------------------------------

def test_the_campaign_page_and_api_say_what_is_held_and_why(env, sink, request):
    settings = warm(env, sink)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    request.addfinalizer(lambda: env.app.config.update(ALTKRAFT_SETTINGS=env.settings))
    list_id, _ = audience(env, gmail=4, outlook=0, other=0)
    campaign_id = campaign(env, settings, list_id)
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    client = env.app.test_client()
    env.login(client, env.user("Manager"))
    page = client.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="warmup-held"' in page and settings.domain in page and "Gmail" in page
    token = env.token("Manager")
    found = client.get(f"/api/v1/campaigns/{campaign_id}",
                       headers={"Authorization": f"Bearer {token}"}).get_json()
    assert found["stats"]["held"] == 2
    assert found["warmup"]["providers"][0] == {"provider": "gmail", "label": "Gmail", "held": 2,
                                               "released_today": 2, "quota": 2}


def test_the_domain_page_switches_the_warm_up_on_and_shows_its_day(env, api):
    created = api("POST", "/domains", json={"domain": "Warm-Page.example."})
    assert created.status_code == 201, created.get_json()
    domain_id = created.get_json()["id"]
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    page = f"/settings/domains/{domain_id}"
    token = csrf_token(client.get(page).get_data(as_text=True))
    started = (utcnow().date() - timedelta(days=2)).isoformat()
    response = client.post(f"{page}/warmup", data={"csrf_token": token, "warmup": "on",
                                                   "warmup_started_on": started})
    assert response.status_code == 302
    shown = client.get(page).get_data(as_text=True)
    assert 'id="warmup-status"' in shown and "Day 3 of 20" in shown
    found = api("GET", f"/domains/{domain_id}").get_json()
    assert found["warmup"] == {"enabled": True, "started_on": started}
    response = client.post(f"{page}/warmup", data={"csrf_token": token, "warmup_started_on": "soon"})
    assert response.status_code == 422 and "YYYY-MM-DD" in response.get_data(as_text=True)


def test_switching_the_warm_up_on_with_no_date_starts_it_today_on_the_page_and_the_api(env, api):
    """An empty date field (the page) or no/null date (the API) with the warm-up on means day 1
    is today — stored, so tomorrow is day 2, not day 1 again."""
    today = utcnow().date().isoformat()
    created = api("POST", "/domains", json={"domain": "warm-nodate.example"})
    domain_id = created.get_json()["id"]
    client = env.app.test_client()
    env.login(client, env.user("Administrator"))
    page = f"/settings/domains/{domain_id}"
    token = csrf_token(client.get(page).get_data(as_text=True))
    response = client.post(f"{page}/warmup", data={"csrf_token": token, "warmup": "on",
                                                   "warmup_started_on": "  "})
    assert response.status_code == 302
    assert api("GET", f"/domains/{domain_id}").get_json()["warmup"] == {"enabled": True,
                                                                        "started_on": today}
    started = (utcnow().date() - timedelta(days=4)).isoformat()
    client.post(f"{page}/warmup", data={"csrf_token": token, "warmup": "on",
                                        "warmup_started_on": started})
    response = client.post(f"{page}/warmup", data={"csrf_token": token, "warmup": "on",
                                                   "warmup_started_on": ""})
    assert api("GET", f"/domains/{domain_id}").get_json()["warmup"]["started_on"] == started

    created = api("POST", "/domains", json={"domain": "warm-nodate-api.example"})
    other = created.get_json()["id"]
    found = api("PATCH", f"/domains/{other}", json={"warmup": True, "warmup_started_on": None})
    assert found.status_code == 200, found.get_json()
    assert found.get_json()["warmup"] == {"enabled": True, "started_on": today}
    found = api("PATCH", f"/domains/{other}", json={"warmup_started_on": None})
    assert found.get_json()["warmup"] == {"enabled": True, "started_on": today}
    found = api("PATCH", f"/domains/{other}", json={"warmup": False, "warmup_started_on": None})
    assert found.get_json()["warmup"] == {"enabled": False, "started_on": None}
