"""Segments: JSON conditions -> parameterised SQLAlchemy expressions; saved segments.

Conditions (the API and the condition builder use the same JSON):
    group:  {"op": "and"|"or", "rules": [rule-or-group, …]}
    field:  {"field": "country" | "custom.plan", "operator": "eq", "value": …}
    list:   {"list": 3, "operator": "member"|"not_member", "status": "confirmed"|…|"any"}
    activity: {"activity": "open"|"click"|"read", "operator": "did"|"did_not",
               "campaign": 12 (optional), "days": 30 (optional)}   (people, not machines)
Values are always bound parameters. A custom field's key is only ever a defined key that
matches [a-z][a-z0-9_]*, written into the SQL exactly like its expression index.
"""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import (
    Connection,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.types import Numeric, String

from altkraft_onprem import extensions
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.scope import refuse_limited
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from . import fields as fields_service
from .models import segments, subscriber_lists, subscribers
from .segment_conditions import (  # noqa: F401 - validate, field_catalogue: part of this module's API
    OPERATORS,
    Checker,
    field_catalogue,
    validate,
)

# --- compilation ------------------------------------------------------------------------------

def _column(name: str, kind: str, dialect: str):
    if name.startswith("custom."):
        key = name[7:]
        value = fields_service.custom_value(dialect, key)
        if dialect == "postgresql" and kind == "number":
            typed = func.jsonb_typeof(subscribers.c.custom.op("->")(literal_column(f"'{key}'")))
            return case((typed == "number", cast(value, Numeric)), else_=None)
        return value
    return subscribers.c[name]


def _day_start(value: str | date) -> datetime:
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return datetime.combine(day, time.min, tzinfo=UTC)


def _bound(name: str, kind: str, moment: datetime):
    """A time bound in the column's own representation."""
    if name.startswith("custom."):
        return moment.date().isoformat() if kind == "date" else moment.isoformat()
    return moment.date() if kind == "date" else moment


def _field_expr(rule: dict, kind: str, dialect: str):
    name, operator, value = rule["field"], rule["operator"], rule.get("value")
    col = _column(name, kind, dialect)
    blank = kind in ("text", "choice")
    if operator == "empty":
        return or_(col.is_(None), col == "") if blank else col.is_(None)
    if operator == "not_empty":
        return and_(col.is_not(None), col != "") if blank else col.is_not(None)
    if kind == "boolean":
        wanted = operator == "is_true"
        if dialect == "postgresql":
            return col == ("true" if wanted else "false")
        return col == (1 if wanted else 0)
    if kind in ("date", "datetime"):
        if operator in ("in_last_days", "not_in_last_days"):
            since = _bound(name, kind, utcnow().replace(microsecond=0) - timedelta(days=value))
            inside = and_(col.is_not(None), col >= since)
            return inside if operator == "in_last_days" else or_(col.is_(None), not_(inside))
        start = _day_start(value[:10] if isinstance(value, str) else value)
        if kind == "datetime" and operator != "on":
            start = datetime.fromisoformat(value)
        if operator == "before":
            return col < _bound(name, kind, start)
        if operator == "after":
            return col > _bound(name, kind, start)
        return and_(col >= _bound(name, kind, start),
                    col < _bound(name, kind, start + timedelta(days=1)))
    if operator == "eq":
        return col == value
    if operator == "neq":
        return or_(col.is_(None), col != value)
    if operator in ("gt", "gte", "lt", "lte"):
        return {"gt": col > value, "gte": col >= value, "lt": col < value, "lte": col <= value}[operator]
    if operator == "in":
        return col.in_(value)
    if operator == "not_in":
        return or_(col.is_(None), col.not_in(value))
    if operator == "contains":
        return col.icontains(value, autoescape=True)
    if operator == "not_contains":
        return or_(col.is_(None), not_(col.icontains(value, autoescape=True)))
    if operator == "starts_with":
        return col.istartswith(value, autoescape=True)
    if operator == "ends_with":
        return col.iendswith(value, autoescape=True)
    raise ServiceError("unsupported operator %(operator)s", operator=repr(operator))


def _list_expr(rule: dict):
    member = select(subscriber_lists.c.subscriber_id).where(
        subscriber_lists.c.list_id == rule["list"],
        subscriber_lists.c.subscriber_id == subscribers.c.id)
    if rule["status"] != "any":
        member = member.where(subscriber_lists.c.status == rule["status"])
    return member.exists() if rule["operator"] == "member" else not_(member.exists())


def _activity_expr(rule: dict):
    """Engagement (opens, clicks) is tracking's: it answers with the SQL condition."""
    return extensions.SEGMENT_ACTIVITY.ask(rule, subscribers.c.id)


def compile_conditions(conn: Connection, tree: dict):
    """A boolean SQL expression over `subscribers` for a validated tree."""
    checker = Checker(conn)
    dialect = conn.dialect.name

    def walk(node):
        if "rules" in node:
            parts = [walk(rule) for rule in node["rules"]]
            if not parts:
                return true()
            return and_(*parts) if node["op"] == "and" else or_(*parts)
        if "list" in node:
            return _list_expr(node)
        if "activity" in node:
            return _activity_expr(node)
        kind, _ = checker.field_type(node["field"], "conditions")
        return _field_expr(node, kind, dialect)

    return walk(tree)


def matching(conn: Connection, conditions, only=None) -> object:
    """WHERE for the subscribers (not in the trash) that match raw or stored conditions;
    `only`: and are on one of these lists (a role limited to some lists)."""
    tree = validate(conn, conditions)
    where = and_(subscribers.c.deleted_at.is_(None), compile_conditions(conn, tree))
    return where if only is None else and_(where, on_lists(only))


def on_lists(list_ids):
    """WHERE for people on at least one of these lists."""
    return select(subscriber_lists.c.subscriber_id).where(
        subscriber_lists.c.list_id.in_(sorted(list_ids)),
        subscriber_lists.c.subscriber_id == subscribers.c.id).exists()


def date_text(conn: Connection, name: str):
    """A date or datetime field (standard or custom.KEY) as SQL text YYYY-MM-DD (NULL when
    empty); ServiceError when the field is not a date."""
    kind, _ = Checker(conn).field_type(name, "field")
    if kind not in ("date", "datetime"):
        raise ServiceError("field %(name)s is not a date", "field", name=repr(name))
    return func.substr(cast(_column(name, kind, conn.dialect.name), String), 1, 10)


def count(conn: Connection, conditions, only=None) -> int:
    return conn.execute(select(func.count()).select_from(subscribers)
                        .where(matching(conn, conditions, only))).scalar_one()


# --- saved segments ---------------------------------------------------------------------------

def _out(row) -> dict:
    item = dict(row._mapping)
    item["conditions"] = json.loads(item["conditions"])
    return item


def list_segments(conn: Connection) -> list[dict]:
    return [_out(r) for r in conn.execute(select(segments).order_by(segments.c.name))]


def get_segment(conn: Connection, segment_id: int) -> dict:
    row = conn.execute(select(segments).where(segments.c.id == segment_id)).first()
    if row is None:
        raise NotFound("no such segment")
    return _out(row)


def segment_expr(conn: Connection, segment_id: int):
    return matching(conn, get_segment(conn, segment_id)["conditions"])


def _check_name(conn, name: str, except_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ServiceError("a segment needs a name of 1 to 200 characters", "name")
    query = select(segments.c.id).where(segments.c.name == name)
    if except_id is not None:
        query = query.where(segments.c.id != except_id)
    if conn.execute(query).first():
        raise Conflict("a segment named %(name)s already exists", "name", name=repr(name))
    return name


def create_segment(conn: Connection, actor: Actor, name: str, conditions, description: str = "") -> int:
    refuse_limited(actor)
    name = _check_name(conn, name)
    tree = validate(conn, conditions)
    now = utcnow()
    segment_id = conn.execute(insert(segments).values(
        name=name, description=(description or "")[:5000], conditions=json.dumps(tree),
        created_at=now, updated_at=now, created_by=actor.label).returning(segments.c.id)).scalar_one()
    record(conn, actor, "segment.create", "segment", segment_id, name=name)
    return segment_id


def update_segment(conn: Connection, actor: Actor, segment_id: int, *, name: str | None = None,
                   conditions=None, description: str | None = None) -> None:
    refuse_limited(actor)
    get_segment(conn, segment_id)
    values = {}
    if name is not None:
        values["name"] = _check_name(conn, name, segment_id)
    if conditions is not None:
        values["conditions"] = json.dumps(validate(conn, conditions))
    if description is not None:
        values["description"] = description[:5000]
    if values:
        conn.execute(update(segments).where(segments.c.id == segment_id)
                     .values(**values, updated_at=utcnow()))
        record(conn, actor, "segment.update", "segment", segment_id, fields=sorted(values))


def delete_segment(conn: Connection, actor: Actor, segment_id: int) -> None:
    refuse_limited(actor)
    found = get_segment(conn, segment_id)
    conn.execute(delete(segments).where(segments.c.id == segment_id))
    record(conn, actor, "segment.delete", "segment", segment_id, name=found["name"])

