"""Cohorts against a hand-computed fixture (see the comments for the expected cells)."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.reports.cohorts import cohorts, segment_conditions
from altkraft_onprem.tracking import rollup

from .conftest import add_list, add_subscriber, event


@pytest.fixture(scope="module")
def world(env):
    with db.write(env.engine) as conn:
        l1, l2 = add_list(conn, "cohort one"), add_list(conn, "cohort two")
        a = add_subscriber(conn, "a@c.example", "2026-01-05 09:00", "form", [l1])
        b = add_subscriber(conn, "b@c.example", "2026-01-20 09:00", "form", [l2])
        c = add_subscriber(conn, "c@c.example", "2026-01-31 23:30", "import", [l1])
        d = add_subscriber(conn, "d@c.example", "2026-02-01 00:10", "form", [l1])
        e = add_subscriber(conn, "e@c.example", "2026-02-14 12:00", "import", [l2])
        event(conn, "open", a, "2026-01-06 10:00")          # Jan cohort, period 0
        event(conn, "open", a, "2026-02-10 10:00")          # Jan cohort, period 1
        event(conn, "open", a, "2026-02-11 10:00")          # same person, same period: once
        event(conn, "open", b, "2026-03-01 08:00")          # Jan cohort, period 2
        event(conn, "open", b, "2026-01-21 08:00", machine=True, reason="mpp")   # not counted
        event(conn, "open", c, "2026-02-01 00:05")          # Jan cohort, period 1
        event(conn, "open", d, "2026-02-02 10:00")          # Feb cohort, period 0
        event(conn, "open", d, "2026-03-05 10:00")          # Feb cohort, period 1
        event(conn, "click", e, "2026-02-15 10:00", link_index=0)   # Feb cohort, period 0
        event(conn, "click", a, "2026-02-10 10:01", link_index=0)   # Jan cohort, period 1
        rollup.rebuild(conn)
    return {"l1": l1, "l2": l2, "a": a}


def _cells(result, periods=3):
    return {row["cohort"]: (row["size"], row["counts"][:periods]) for row in result["rows"]}


def test_monthly_open_cohorts(env, world):
    with db.read(env.engine) as conn:
        result = cohorts(conn, period="month", metric="open")
    assert _cells(result) == {"2026-01-01": (3, [1, 2, 1]), "2026-02-01": (2, [1, 1, 0])}
    jan = result["rows"][0]
    assert jan["shares"][:3] == [33.3, 66.7, 33.3]


def test_cohorts_filtered_by_list(env, world):
    with db.read(env.engine) as conn:
        result = cohorts(conn, period="month", metric="open", list_id=world["l1"])
    assert _cells(result) == {"2026-01-01": (2, [1, 2, 0]), "2026-02-01": (1, [1, 1, 0])}


def test_cohorts_filtered_by_source(env, world):
    with db.read(env.engine) as conn:
        result = cohorts(conn, period="month", metric="open", source="import")
    assert _cells(result) == {"2026-01-01": (1, [0, 1, 0]), "2026-02-01": (1, [0, 0, 0])}


def test_click_cohorts(env, world):
    with db.read(env.engine) as conn:
        result = cohorts(conn, period="month", metric="click")
    assert _cells(result) == {"2026-01-01": (3, [0, 1, 0]), "2026-02-01": (2, [1, 0, 0])}


def test_weekly_cohorts_count_weeks_from_monday(env, world):
    with db.read(env.engine) as conn:
        result = cohorts(conn, period="week", metric="open", list_id=world["l1"], periods_shown=6)
    first = result["rows"][0]
    # a joined Monday 2026-01-05 (week 0), opened 2026-01-06 (week 0) and 2026-02-10 (week 5)
    assert (first["cohort"], first["size"], first["counts"]) == ("2026-01-05", 1, [1, 0, 0, 0, 0, 1])


def test_a_cell_becomes_a_segment_of_that_cohort(env, world):
    from sqlalchemy import select

    from altkraft_onprem.audience import segments
    from altkraft_onprem.audience.models import subscribers

    conditions = segment_conditions("2026-01-01", "month", world["l1"], None)
    with db.read(env.engine) as conn:
        where = segments.matching(conn, segments.validate(conn, conditions))
        emails = {email for (email,) in conn.execute(select(subscribers.c.email).where(where))}
    assert emails == {"a@c.example", "c@c.example"}


def test_flushes_keep_the_rollup_equal_to_a_rebuild(env, world):
    from sqlalchemy import select

    from altkraft_onprem.db.types import utcnow
    from altkraft_onprem.tracking.buffer import EventBuffer
    from altkraft_onprem.tracking.models import engagement_activity, engagement_cohorts

    def snapshot(conn):
        return [sorted(tuple(r) for r in conn.execute(select(table)))
                for table in (engagement_cohorts, engagement_activity)]

    buffer = EventBuffer()
    for n, (sid, kind) in enumerate([(world["a"], "open"), (world["a"], "open"), (world["a"], "click")]):
        buffer.add(env.engine, {"at": utcnow(), "kind": kind, "campaign_id": 900 + n, "subscriber_id": sid,
                                "version_id": 1, "link_index": 0 if kind == "click" else None, "machine": False,
                                "reason": None, "read_seconds": None, "read_class": None, "user_agent": "",
                                "ip": ""})
    buffer.flush()
    with db.read(env.engine) as conn:
        incremental = snapshot(conn)
    with db.write(env.engine) as conn:
        rollup.rebuild(conn)
    with db.read(env.engine) as conn:
        assert snapshot(conn) == incremental


def test_list_cohorts_from_flushes_equal_a_rebuild(env, world):
    """The list-filtered report reads each member's active periods (engagement_activity): kept by
    flushes in any order, equal to a rebuild, and periods before joining or beyond the bits
    are left out."""
    from sqlalchemy import select

    from altkraft_onprem.tracking.buffer import EventBuffer
    from altkraft_onprem.tracking.models import engagement_activity

    from .conftest import at

    with db.write(env.engine) as conn:
        l3 = add_list(conn, "cohort three")
        x = add_subscriber(conn, "x@c.example", "2025-03-10 08:00", "form", [l3])
        y = add_subscriber(conn, "y@c.example", "2026-06-30 23:59", "import", [l3])
    buffer = EventBuffer()
    flushes = [[(x, "open", "2026-07-01 10:00"), (y, "open", "2026-07-15 10:00")],     # x: month 16, week 68
               [(x, "open", "2025-03-10 09:00"), (x, "open", "2025-02-01 09:00"),      # x: period 0; before joining
                (y, "open", "2026-07-16 10:00")]]                                      # y: same periods again
    for batch in flushes:
        for n, (sid, kind, when) in enumerate(batch):
            buffer.add(env.engine, {"at": at(when), "kind": kind, "campaign_id": 950 + n, "subscriber_id": sid,
                                    "version_id": 1, "link_index": None, "machine": False, "reason": None,
                                    "read_seconds": None, "read_class": None, "user_agent": "", "ip": ""})
        buffer.flush()

    def activity(conn):
        return sorted(tuple(r) for r in conn.execute(select(engagement_activity)))

    with db.read(env.engine) as conn:
        incremental = activity(conn)
        monthly = _cells(cohorts(conn, period="month", metric="open", list_id=l3, periods_shown=60), 60)
        weekly = _cells(cohorts(conn, period="week", metric="open", list_id=l3, periods_shown=60), 60)
    assert monthly == {"2025-03-01": (1, [1] + [0] * 15 + [1] + [0] * 43),
                       "2026-06-01": (1, [0, 1] + [0] * 58)}
    assert weekly == {"2025-03-10": (1, [1] + [0] * 59),                # week 68 is beyond the bits
                      "2026-06-29": (1, [0, 0, 1] + [0] * 57)}
    with db.write(env.engine) as conn:
        rollup.rebuild(conn)
    with db.read(env.engine) as conn:
        assert activity(conn) == incremental
        source_only = _cells(cohorts(conn, period="month", metric="open", list_id=l3, source="import"), 2)
    assert source_only == {"2026-06-01": (1, [0, 1])}
