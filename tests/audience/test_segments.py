"""Segment conditions compile to parameterised SQL on both databases; hostile values are data."""
from __future__ import annotations

import uuid

import pytest

from altkraft_onprem import db
from altkraft_onprem.audience import fields, segments
from altkraft_onprem.errors import ServiceError

from .conftest import ACTOR

HOSTILE = ["'; DROP TABLE subscribers; --", "%", "_", "\\", "' OR '1'='1", "\") OR 1=1 --",
           "$.x'); --", "\x00nul", "ünïcødé 🎉", "a%b_c\\d"]


@pytest.fixture(scope="module")
def world(env):
    from tests.audience.conftest import People
    people = People(env)
    with db.write(env.engine) as conn:
        fields.create_field(conn, ACTOR, "plan", "Plan", "choice", ["free", "gold"])
        fields.create_field(conn, ACTOR, "score", "Score", "number")
        fields.create_field(conn, ACTOR, "vip", "VIP", "boolean")
        fields.create_field(conn, ACTOR, "note", "Note", "text")
        fields.create_field(conn, ACTOR, "since", "Since", "date")
    news = people.list("news-" + uuid.uuid4().hex[:6])
    other = people.list("other-" + uuid.uuid4().hex[:6])
    ids = {
        "ann": people.add("ann@example.com", [news], first_name="Ann", country="DE",
                          custom={"plan": "gold", "score": 10, "vip": True, "note": HOSTILE[0],
                                  "since": "2020-01-01"}),
        "bob": people.add("bob@example.org", [news], status="unconfirmed", first_name="Bob",
                          country="FR", custom={"plan": "free", "score": 2.5, "vip": False,
                                                "note": "a%b_c\\d"}),
        "cy": people.add("cy@example.net", [other], first_name="' OR '1'='1", country="DE"),
    }
    return {"ids": ids, "news": news, "other": other, "env": env}


def matches(world, conditions) -> set[str]:
    from sqlalchemy import select

    from altkraft_onprem.audience.models import subscribers
    with db.read(world["env"].engine) as conn:
        found = set(conn.execute(select(subscribers.c.id).where(
            segments.matching(conn, conditions))).scalars())
    return {name for name, sid in world["ids"].items() if sid in found}


def rule(field, operator, value=None):
    item = {"field": field, "operator": operator}
    if value is not None:
        item["value"] = value
    return {"op": "and", "rules": [item]}


def test_standard_field_equals(world):
    assert matches(world, rule("country", "eq", "DE")) == {"ann", "cy"}


def test_custom_fields_and_list_membership_nested(world):
    tree = {"op": "and", "rules": [
        {"list": world["news"], "operator": "member", "status": "any"},
        {"op": "or", "rules": [{"field": "custom.plan", "operator": "eq", "value": "gold"},
                               {"field": "custom.score", "operator": "lt", "value": 3}]}]}
    assert matches(world, tree) == {"ann", "bob"}


def test_list_status_and_not_member(world):
    assert matches(world, {"op": "and", "rules": [{"list": world["news"]}]}) == {"ann"}
    assert matches(world, {"op": "and", "rules": [
        {"list": world["news"], "operator": "not_member", "status": "any"}]}) == {"cy"}


def test_boolean_number_date_operators(world):
    assert matches(world, rule("custom.vip", "is_true")) == {"ann"}
    assert matches(world, rule("custom.vip", "is_false")) == {"bob"}
    assert matches(world, rule("custom.score", "gte", "2.5")) == {"ann", "bob"}
    assert matches(world, rule("custom.since", "before", "2021-01-01")) == {"ann"}
    assert matches(world, rule("custom.since", "empty")) == {"bob", "cy"}
    assert matches(world, rule("created_at", "in_last_days", 1)) == {"ann", "bob", "cy"}


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_plain_data(world, value):
    value = value.replace("\x00", "")
    for operator in ("eq", "neq", "contains", "not_contains", "starts_with", "ends_with"):
        found = matches(world, rule("first_name", operator, value))
        expected = {"eq": set(), "neq": {"ann", "bob", "cy"}, "contains": set(),
                    "not_contains": {"ann", "bob", "cy"}, "starts_with": set(), "ends_with": set()}
        if value == "' OR '1'='1":
            expected = {"eq": {"cy"}, "neq": {"ann", "bob"}, "contains": {"cy"},
                        "not_contains": {"ann", "bob"}, "starts_with": {"cy"}, "ends_with": {"cy"}}
        assert found == expected[operator], (operator, value)
    assert matches(world, rule("custom.note", "contains", value)) == (
        {"ann"} if value in HOSTILE[0] else ({"bob"} if value in "a%b_c\\d" else set()))


def test_like_wildcards_are_escaped(world):
    assert matches(world, rule("custom.note", "eq", "a%b_c\\d")) == {"bob"}
    assert matches(world, rule("custom.note", "contains", "%b_")) == {"bob"}
    assert matches(world, rule("custom.note", "contains", "x%")) == set()


def test_tables_survive_hostile_values(world):
    from sqlalchemy import func, select

    from altkraft_onprem.audience.models import subscribers
    with db.read(world["env"].engine) as conn:
        assert conn.execute(select(func.count()).select_from(subscribers)).scalar_one() >= 3


@pytest.mark.parametrize("bad, field", [
    ({"op": "xor", "rules": []}, "conditions.op"),
    ({"op": "and", "rules": [{"field": "nope", "operator": "eq", "value": 1}]},
     "conditions.rules[0].field"),
    ({"op": "and", "rules": [{"field": "custom.x'--", "operator": "eq", "value": 1}]},
     "conditions.rules[0].field"),
    ({"op": "and", "rules": [{"field": "custom.score", "operator": "contains", "value": "1"}]},
     "conditions.rules[0].operator"),
    ({"op": "and", "rules": [{"field": "custom.score", "operator": "gt", "value": "ten"}]},
     "conditions.rules[0].value"),
    ({"op": "and", "rules": [{"list": "1; DROP"}]}, "conditions.rules[0].list"),
    ({"op": "and", "rules": ["x"]}, "conditions.rules[0]"),
])
def test_bad_conditions_name_the_part(world, bad, field):
    with db.read(world["env"].engine) as conn, pytest.raises(ServiceError) as caught:
        segments.validate(conn, bad)
    assert caught.value.field == field


def test_saved_segment_counts(world):
    with db.write(world["env"].engine) as conn:
        segment_id = segments.create_segment(conn, ACTOR, "Germans " + uuid.uuid4().hex[:4],
                                             rule("country", "eq", "DE"))
        assert segments.count(conn, segments.get_segment(conn, segment_id)["conditions"]) == 2


def test_custom_field_index_exists(world):
    from sqlalchemy import text
    with db.read(world["env"].engine) as conn:
        if conn.dialect.name == "postgresql":
            names = set(conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'subscribers'")).scalars())
        else:
            names = set(conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
    assert {"ix_subscribers_custom_plan", "ix_subscribers_custom_score"} <= names


def test_sqlite_planner_uses_the_custom_index(world):
    from sqlalchemy import func, select

    from altkraft_onprem.audience.models import subscribers
    with db.read(world["env"].engine) as conn:
        if conn.dialect.name != "sqlite":
            pytest.skip("SQLite query plan")
        query = select(func.count()).select_from(subscribers).where(
            segments.matching(conn, rule("custom.plan", "eq", "gold")))
        compiled = query.compile(conn, compile_kwargs={})
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + str(compiled), tuple(compiled.params.values())))
    assert "ix_subscribers_custom_plan" in plan


def test_activity_conditions_count_people_not_machines(world):
    from sqlalchemy import insert

    from altkraft_onprem.db.types import utcnow
    from altkraft_onprem.tracking.models import tracking_events
    ids = world["ids"]
    base = {"version_id": 1, "link_index": None, "reason": None, "read_seconds": None,
            "read_class": None, "user_agent": "test", "ip": ""}
    with db.write(world["env"].engine) as conn:
        conn.execute(insert(tracking_events), [
            {**base, "at": utcnow(), "kind": "open", "campaign_id": 5, "subscriber_id": ids["ann"],
             "machine": False},
            {**base, "at": utcnow(), "kind": "click", "campaign_id": 5, "subscriber_id": ids["bob"],
             "machine": True, "reason": "scanner"}])
    did = {"op": "and", "rules": [{"activity": "open", "operator": "did", "days": 7}]}
    assert matches(world, did) == {"ann"}
    assert matches(world, {"op": "and", "rules": [{"activity": "click"}]}) == set()
    assert matches(world, {"op": "and", "rules": [
        {"activity": "open", "operator": "did_not", "campaign": 5}]}) == {"bob", "cy"}


def test_bad_activity_condition_names_the_part(world):
    with db.read(world["env"].engine) as conn, pytest.raises(ServiceError) as caught:
        segments.validate(conn, {"op": "and", "rules": [{"activity": "open", "days": "-1"}]})
    assert caught.value.field == "conditions.rules[0].days"


def test_email_condition_compares_the_normalised_address(world):
    assert matches(world, rule("email", "eq", " ann@EXAMPLE.com ")) == {"ann"}
    assert matches(world, rule("email", "ends_with", "example.org")) == {"bob"}
