"""The campaign roll-up kept by event flushes equals one computed from the events, also after
clicks are relabelled machine in a later flush (scanner pattern, honeypot), per variant."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import gdpr
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.reports import campaign as report
from altkraft_onprem.tracking import campaign_rollup, lookups, tokens
from altkraft_onprem.tracking.buffer import EventBuffer
from altkraft_onprem.tracking.models import (
    campaign_agents,
    campaign_counts,
    campaign_hours,
    campaign_people,
    campaign_uniques,
    tracking_events,
)
from tests.reports.conftest import add_list, add_subscriber, make_campaign

HTML = '<html><body><a href="https://a.example/1">1</a><a href="https://a.example/2">2</a></body></html>'
TABLES = (campaign_counts, campaign_hours, campaign_people, campaign_uniques, campaign_agents)
OUTLOOK = "Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0"
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0"


def _row(campaign_id, subscriber_id, kind, *, link=None, machine=False, reason=None, seconds=None,
         read_class=None, agent=""):
    return {"at": utcnow(), "kind": kind, "campaign_id": campaign_id, "subscriber_id": subscriber_id,
            "version_id": 1, "link_index": link, "machine": machine, "reason": reason,
            "read_seconds": seconds, "read_class": read_class, "user_agent": agent, "ip": ""}


def _snapshot(conn) -> list:
    """Every roll-up row, zero rows left out (a relabel leaves zeros a rebuild does not make)."""
    out = []
    for table in TABLES:
        for row in conn.execute(select(table)).mappings():
            row = dict(row)
            if row.get("events", 1) == 0 or row.get("people", 1) == 0:
                continue
            if "read_seconds" in row:
                row["read_seconds"] = round(row["read_seconds"], 6)
            out.append((table.name, tuple(sorted(row.items()))))
    return sorted(out)


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        list_id = add_list(conn, "rollup list")
        people = {name: add_subscriber(conn, f"{name}@{'one' if name in 'ab' else 'two'}.example",
                                       "2026-01-01 00:00", lists_joined=[list_id]) for name in "abcde"}
        campaign = make_campaign(conn, "Rollup", HTML, list_id)["id"]
        plain = make_campaign(conn, "Rollup, no split test", HTML, list_id)["id"]
        long_ago = utcnow() - timedelta(days=1)
        conn.execute(insert(deliveries).values(campaign_id=plain, subscriber_id=people["a"], variant=0,
                                               state="sent", attempts=1, done_at=long_ago))
        for name, variant in zip("abcde", (1, 1, 2, 2, 1), strict=True):
            conn.execute(insert(deliveries).values(campaign_id=campaign, subscriber_id=people[name],
                                                   variant=variant, state="sent", attempts=1, done_at=long_ago))
    buffer = EventBuffer()
    c, p = campaign, people
    for row in [_row(c, p["a"], "open", agent=OUTLOOK), _row(c, p["a"], "open", agent=THUNDERBIRD),
                _row(c, p["a"], "click", link=0), _row(c, p["b"], "open", machine=True, reason="mpp",
                                                        agent="Mozilla/5.0"),
                _row(c, p["b"], "read", seconds=12.5, read_class="read"),
                _row(c, p["d"], "read", seconds=3.0, read_class="skimmed"),
                _row(c, p["d"], "read", read_class="unmeasurable", reason="proxy"),
                _row(c, p["c"], "click", link=0), _row(c, p["c"], "open", agent=THUNDERBIRD),
                _row(plain, p["a"], "open", agent=OUTLOOK), _row(plain, p["a"], "click", link=1),
                _row(plain, p["b"], "open", machine=True, reason="mpp", agent="Mozilla/5.0")]:
        buffer.add(env.engine, row)
    buffer.flush()
    # later: c fetches every link within seconds (a scanner); a's gateway fetches the honeypot
    for row in [_row(c, p["c"], "click", link=1), _row(c, p["c"], "click", link=2),
                _row(c, p["a"], "click", link=tokens.HONEYPOT_LINK, machine=True, reason="honeypot"),
                _row(c, p["e"], "click", link=1), _row(c, p["e"], "open", agent=OUTLOOK)]:
        buffer.add(env.engine, row)
    buffer.flush()
    return {"campaign": campaign, "plain": plain, "people": people}


def test_flushes_equal_a_rebuild(env, world):
    with db.read(env.engine) as conn:
        incremental = _snapshot(conn)
    with db.write(env.engine) as conn:
        campaign_rollup.rebuild(conn)
        rebuilt = _snapshot(conn)
    assert incremental == rebuilt


def test_relabelled_clickers_are_no_longer_human(env, world):
    with db.read(env.engine) as conn:
        summary = report.summary(conn, world["campaign"])
    assert summary["clicks"] == {"unique": 3, "total": 6, "human": 1, "machine": 5}
    assert summary["opens"] == {"unique": 4, "total": 5, "human": 3, "machine": 1}


def test_figures_per_variant(env, world):
    with db.read(env.engine) as conn:
        first = report.summary(conn, world["campaign"], variant=1)
        second = report.summary(conn, world["campaign"], variant=2)
    assert (first["opens"]["human"], first["clicks"]["human"], first["delivered"]) == (2, 1, 3)
    assert (second["opens"]["human"], second["clicks"]["human"], second["delivered"]) == (1, 0, 2)
    assert second["reads"]["skimmed"] == 1 and second["reads"]["not_measurable"] == 1
    assert first["reads"]["read"] == 1 and first["reads"]["avg_seconds"] == 12.5


def test_clients_count_each_opener_once_by_first_open(env, world):
    with db.read(env.engine) as conn:
        clients = {c["name"]: c["opens"] for c in report.by_client(conn, world["campaign"])["clients"]}
    assert clients == {"Outlook": 2, "Thunderbird": 1, "Apple Mail (privacy proxy)": 1}


def test_by_domain_counts_human_people(env, world):
    with db.read(env.engine) as conn:
        rows = {d["domain"]: (d["delivered"], d["opens"], d["clicks"]) for d in report.by_domain(conn, world["campaign"])}
    assert rows == {"one.example": (2, 1, 0), "two.example": (3, 2, 1)}


def _from_events(conn, campaign_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Unique human openers and clickers counted from the events themselves."""
    ev = tracking_events.c
    found = {(c, k): n for c, k, n in conn.execute(
        select(ev.campaign_id, ev.kind, func.count(func.distinct(ev.subscriber_id)))
        .where(ev.campaign_id.in_(campaign_ids), ev.kind.in_(("open", "click")), ev.machine.is_(False))
        .group_by(ev.campaign_id, ev.kind))}
    return {c: (found.get((c, "open"), 0), found.get((c, "click"), 0)) for c in campaign_ids}


def test_a_workflow_splits_figures_are_the_roll_ups_and_the_events(env, world):
    """lookups.unique_engaged reads the roll-up: the same people as the events (machine opens,
    clicks relabelled machine later, split-test variants summed), a campaign without events 0."""
    with db.read(env.engine) as conn:
        ids = [world["campaign"], world["plain"], world["plain"] + 1000]
        found = lookups.unique_engaged(conn, ids)
        assert found == _from_events(conn, ids)
        summary = report.summary(conn, world["campaign"])
    assert found[world["campaign"]] == (summary["opens"]["human"], summary["clicks"]["human"]) == (3, 1)
    assert found[world["plain"]] == (1, 1) and found[world["plain"] + 1000] == (0, 0)


def test_an_erased_person_stays_counted_like_in_the_report(env, world):
    """Erasure deletes a person's events but not the roll-up's counts (tracking/erasure.py):
    a workflow split decided afterwards counts what the campaign's report shows."""
    with db.write(env.engine) as conn:
        gdpr.erase_person(conn, system_actor("test"), world["people"]["e"])
    with db.read(env.engine) as conn:
        found = lookups.unique_engaged(conn, [world["campaign"]])[world["campaign"]]
        summary = report.summary(conn, world["campaign"])
        events = _from_events(conn, [world["campaign"]])[world["campaign"]]
    assert found == (summary["opens"]["human"], summary["clicks"]["human"]) == (3, 1)
    assert events == (2, 0)          # e's open and click went with e
