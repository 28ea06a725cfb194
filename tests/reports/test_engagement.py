"""Engagement against a hand-computed fixture: 2026-03-01 .. 2026-03-03, per day."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.reports.engagement import engagement

from .conftest import activity, add_list, add_subscriber, at, join

LABELS = ["2026-03-01", "2026-03-02", "2026-03-03"]


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        l1, l2 = add_list(conn, "growth one"), add_list(conn, "growth two")
        x = add_subscriber(conn, "x@g.example", "2026-03-01 08:00")
        y = add_subscriber(conn, "y@g.example", "2026-03-01 09:00")
        z = add_subscriber(conn, "z@g.example", "2026-03-02 10:00")
        w = add_subscriber(conn, "w@g.example", "2026-03-02 11:00")
        add_subscriber(conn, "old@g.example", "2026-02-27 11:00")          # before the range
        join(conn, l1, x, "2026-03-01 08:00", left="2026-03-03 12:00")
        join(conn, l2, x, "2026-03-01 08:00", left="2026-03-03 12:05")    # same person, same day
        join(conn, l1, y, "2026-03-01 09:00")
        join(conn, l1, z, "2026-03-02 10:00")
        join(conn, l2, w, "2026-03-02 11:00")
        activity(conn, y, "bounced", "2026-03-02 13:00")
        activity(conn, z, "complained", "2026-03-03 14:00")
        activity(conn, w, "bounced", "2026-03-03 15:00")
    return {"l1": l1, "l2": l2}


def _run(env, **kwargs):
    with db.read(env.engine) as conn:
        return engagement(conn, period="day", since=at("2026-03-01 00:00"), until=at("2026-03-04 00:00"), **kwargs)


def test_engagement_of_one_list_per_day(env, world):
    result = _run(env, list_id=world["l1"])
    assert result["labels"] == LABELS
    assert result["new"] == [2, 1, 0]
    assert result["unsubscribes"] == [0, 0, 1]
    assert result["bounces"] == [0, 1, 0]
    assert result["complaints"] == [0, 0, 1]
    assert result["net"] == [2, 0, -2]


def test_engagement_of_all_lists_counts_people_once(env, world):
    result = _run(env)
    assert result["new"] == [2, 2, 0]
    assert result["unsubscribes"] == [0, 0, 1]
    assert result["bounces"] == [0, 1, 1]
    assert result["net"] == [2, 1, -3]
    assert result["totals"]["net"] == 0


def test_engagement_per_week_and_month(env, world):
    with db.read(env.engine) as conn:
        weekly = engagement(conn, period="week", since=at("2026-02-23 00:00"), until=at("2026-03-09 00:00"))
        monthly = engagement(conn, period="month", since=at("2026-02-01 00:00"), until=at("2026-04-01 00:00"))
    # 2026-03-01 is a Sunday: x and y fall in the week of 2026-02-23, z and w in 2026-03-02
    assert weekly["labels"] == ["2026-02-23", "2026-03-02"]
    assert weekly["new"] == [3, 2]
    assert monthly["labels"] == ["2026-02-01", "2026-03-01"]
    assert monthly["new"] == [1, 4]
