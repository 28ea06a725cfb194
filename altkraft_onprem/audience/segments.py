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
from sqlalchemy.types import Numeric

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from . import fields as fields_service
from .models import (
    MEMBER_STATUSES,
    STANDARD_FIELDS,
    SUBSCRIBER_STATES,
    FieldError,
    clean_custom,
    clean_standard,
    countries,
    segments,
    subscriber_lists,
    subscribers,
)

MAX_DEPTH = 6
MAX_RULES = 200
EMPTY = ("empty", "not_empty")
OPERATORS: dict[str, tuple[str, ...]] = {
    "text": ("eq", "neq", "contains", "not_contains", "starts_with", "ends_with", "in", "not_in",
             *EMPTY),
    "number": ("eq", "neq", "gt", "gte", "lt", "lte", *EMPTY),
    "date": ("on", "before", "after", "in_last_days", "not_in_last_days", *EMPTY),
    "datetime": ("on", "before", "after", "in_last_days", "not_in_last_days", *EMPTY),
    "boolean": ("is_true", "is_false", *EMPTY),
    "choice": ("eq", "neq", "in", "not_in", *EMPTY),
    "json": ("contains", *EMPTY),
}
LIST_OPERATORS = ("member", "not_member")
ACTIVITIES = ("open", "click", "read")
ACTIVITY_OPERATORS = ("did", "did_not")
# Fields beyond the twelve standard ones that segments may use.
EXTRA_FIELDS = {"state": "choice", "created_at": "datetime", "email_domain": "text",
                "source": "text"}


def field_catalogue(conn: Connection) -> list[dict]:
    """Every field a condition may name, with its type, operators and choices (for the UI)."""
    from .models import GENDERS, STANDARD_TYPES

    out = []
    for name in STANDARD_FIELDS:
        kind = STANDARD_TYPES[name]
        choices = list(GENDERS) if name == "gender" else (
            sorted(countries()) if name == "country" else [])
        out.append({"field": name, "label": name.replace("_", " ").capitalize(), "type": kind,
                    "operators": list(OPERATORS[kind]), "choices": choices})
    for name, kind in EXTRA_FIELDS.items():
        out.append({"field": name, "label": name.replace("_", " ").capitalize(), "type": kind,
                    "operators": list(OPERATORS[kind]),
                    "choices": list(SUBSCRIBER_STATES) if name == "state" else []})
    for f in fields_service.list_fields(conn):
        out.append({"field": f"custom.{f['key']}", "label": f["label"], "type": f["type"],
                    "operators": list(OPERATORS[f["type"]]), "choices": f["choices"]})
    return out


# --- validation ---------------------------------------------------------------------------------

class _Checker:
    def __init__(self, conn: Connection):
        self.defs = fields_service.definitions(conn)
        self.rules = 0

    def group(self, node, path: str, depth: int) -> dict:
        if not isinstance(node, dict):
            raise ServiceError("expected a group object", path)
        if depth > MAX_DEPTH:
            raise ServiceError(f"groups nest at most {MAX_DEPTH} deep", path)
        op = node.get("op", "and")
        if op not in ("and", "or"):
            raise ServiceError("op must be and or or", f"{path}.op")
        rules = node.get("rules", [])
        if not isinstance(rules, list):
            raise ServiceError("rules must be a list", f"{path}.rules")
        out = []
        for index, rule in enumerate(rules):
            where = f"{path}.rules[{index}]"
            self.rules += 1
            if self.rules > MAX_RULES:
                raise ServiceError(f"at most {MAX_RULES} conditions", where)
            if isinstance(rule, dict) and "rules" in rule:
                out.append(self.group(rule, where, depth + 1))
            elif isinstance(rule, dict) and "list" in rule:
                out.append(self.list_rule(rule, where))
            elif isinstance(rule, dict) and "activity" in rule:
                out.append(self.activity_rule(rule, where))
            elif isinstance(rule, dict) and "field" in rule:
                out.append(self.field_rule(rule, where))
            else:
                raise ServiceError("expected a group, a field or a list condition", where)
        return {"op": op, "rules": out}

    def list_rule(self, rule: dict, path: str) -> dict:
        list_id = rule.get("list")
        if isinstance(list_id, bool) or not isinstance(list_id, int) or not 0 < list_id < 2**31:
            raise ServiceError("list must be a list id", f"{path}.list")
        operator = rule.get("operator", "member")
        if operator not in LIST_OPERATORS:
            raise ServiceError("operator must be member or not_member", f"{path}.operator")
        status = rule.get("status", "confirmed")
        if status != "any" and status not in MEMBER_STATUSES:
            raise ServiceError("status must be confirmed, unconfirmed, unsubscribed or any",
                               f"{path}.status")
        return {"list": list_id, "operator": operator, "status": status}

    @staticmethod
    def activity_rule(rule: dict, path: str) -> dict:
        kind = rule.get("activity")
        if kind not in ACTIVITIES:
            raise ServiceError("activity must be open, click or read", f"{path}.activity")
        operator = rule.get("operator", "did")
        if operator not in ACTIVITY_OPERATORS:
            raise ServiceError("operator must be did or did_not", f"{path}.operator")
        out = {"activity": kind, "operator": operator}
        for key, limit in (("campaign", 2**31 - 1), ("days", 100_000)):
            value = rule.get(key)
            if value in (None, ""):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, str)) or \
                    not str(value).isdigit() or not 0 < int(value) <= limit:
                raise ServiceError(f"{key} must be a whole number from 1 to {limit}",
                                   f"{path}.{key}")
            out[key] = int(value)
        return out

    def field_type(self, name, path: str) -> tuple[str, dict | None]:
        if not isinstance(name, str):
            raise ServiceError("field must be a field name", f"{path}.field")
        if name.startswith("custom."):
            definition = self.defs.get(name[7:])
            if definition is None:
                raise ServiceError(f"unknown custom field {name[7:]!r}", f"{path}.field")
            return definition["type"], definition
        from .models import STANDARD_TYPES
        if name in STANDARD_TYPES:
            return STANDARD_TYPES[name], None
        if name in EXTRA_FIELDS:
            return EXTRA_FIELDS[name], None
        raise ServiceError(f"unknown field {name!r}", f"{path}.field")

    def field_rule(self, rule: dict, path: str) -> dict:
        name = rule.get("field")
        kind, definition = self.field_type(name, path)
        operator = rule.get("operator")
        if operator not in OPERATORS[kind]:
            raise ServiceError(f"operator for a {kind} field must be one of "
                               f"{', '.join(OPERATORS[kind])}", f"{path}.operator")
        out = {"field": name, "operator": operator}
        if operator in EMPTY or operator in ("is_true", "is_false"):
            return out
        raw = rule.get("value")
        where = f"{path}.value"
        if operator in ("in_last_days", "not_in_last_days"):
            if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).isdigit() \
                    or not 0 <= int(raw) <= 100_000:
                raise ServiceError("a number of days (0 to 100000)", where)
            out["value"] = int(raw)
        elif operator in ("in", "not_in"):
            items = raw if isinstance(raw, list) else [raw]
            if not items or len(items) > 1000:
                raise ServiceError("a list of 1 to 1000 values", where)
            out["value"] = [self.scalar(kind, name, definition, v, where) for v in items]
        elif operator in ("contains", "not_contains", "starts_with", "ends_with"):
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool) or str(raw) == "":
                raise ServiceError("a non-empty text", where)
            out["value"] = str(raw)[:1000]
        else:
            out["value"] = self.scalar(kind, name, definition, raw, where)
        return out

    @staticmethod
    def scalar(kind: str, name: str, definition, raw, where: str):
        if raw is None or raw == "":
            raise ServiceError("a value is required", where)
        try:
            if kind == "number":
                return clean_custom("number", raw, name=where)
            if kind == "date":
                return clean_custom("date", raw, name=where)
            if kind == "datetime":
                return clean_custom("datetime", raw, name=where)
            if kind == "choice" and definition is not None:
                return clean_custom("choice", raw, definition["choices"], name=where)
            if name in ("gender", "country"):
                return clean_standard(name, raw)
            if name == "email":
                try:                            # a whole address compares in stored form
                    return clean_standard("email", raw)
                except FieldError:
                    return str(raw).strip()[:320]
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise ServiceError("expected text", where)
            return str(raw)[:1000]
        except FieldError as exc:
            raise ServiceError(exc.message, where) from None


def validate(conn: Connection, conditions) -> dict:
    """The normalised condition tree, or ServiceError naming the bad part (e.g.
    conditions.rules[1].value)."""
    if conditions is None:
        conditions = {"op": "and", "rules": []}
    return _Checker(conn).group(conditions, "conditions", 1)


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
    raise ServiceError(f"unsupported operator {operator!r}")


def _list_expr(rule: dict):
    member = select(subscriber_lists.c.subscriber_id).where(
        subscriber_lists.c.list_id == rule["list"],
        subscriber_lists.c.subscriber_id == subscribers.c.id)
    if rule["status"] != "any":
        member = member.where(subscriber_lists.c.status == rule["status"])
    return member.exists() if rule["operator"] == "member" else not_(member.exists())


def _activity_expr(rule: dict):
    from altkraft_onprem.tracking.models import tracking_events

    events = select(tracking_events.c.id).where(
        tracking_events.c.subscriber_id == subscribers.c.id,
        tracking_events.c.kind == rule["activity"], tracking_events.c.machine.is_(False))
    if "campaign" in rule:
        events = events.where(tracking_events.c.campaign_id == rule["campaign"])
    if "days" in rule:
        events = events.where(tracking_events.c.at >= utcnow() - timedelta(days=rule["days"]))
    return events.exists() if rule["operator"] == "did" else not_(events.exists())


def compile_conditions(conn: Connection, tree: dict):
    """A boolean SQL expression over `subscribers` for a validated tree."""
    checker = _Checker(conn)
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


def matching(conn: Connection, conditions) -> object:
    """WHERE for the subscribers (not in the trash) that match raw or stored conditions."""
    tree = validate(conn, conditions)
    return and_(subscribers.c.deleted_at.is_(None), compile_conditions(conn, tree))


def count(conn: Connection, conditions) -> int:
    return conn.execute(select(func.count()).select_from(subscribers)
                        .where(matching(conn, conditions))).scalar_one()


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
        raise Conflict(f"a segment named {name!r} already exists", "name")
    return name


def create_segment(conn: Connection, actor: Actor, name: str, conditions, description: str = "") -> int:
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
    found = get_segment(conn, segment_id)
    conn.execute(delete(segments).where(segments.c.id == segment_id))
    record(conn, actor, "segment.delete", "segment", segment_id, name=found["name"])

