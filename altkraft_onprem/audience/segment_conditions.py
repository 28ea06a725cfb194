"""Segment conditions: the vocabulary (fields, operators), the field catalogue for the
condition builder, and validation of a condition tree (JSON in, normalised tree or a
ServiceError naming the bad part out). Compilation to SQL is in segments.py.
"""
from __future__ import annotations

from sqlalchemy import Connection

from altkraft_onprem.errors import ServiceError

from . import fields as fields_service
from .models import (
    GENDERS,
    MEMBER_STATUSES,
    STANDARD_FIELDS,
    STANDARD_TYPES,
    SUBSCRIBER_STATES,
    FieldError,
    clean_custom,
    clean_standard,
    countries,
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

class Checker:
    def __init__(self, conn: Connection):
        self.defs = fields_service.definitions(conn)
        self.rules = 0

    def group(self, node, path: str, depth: int) -> dict:
        if not isinstance(node, dict):
            raise ServiceError("expected a group object", path)
        if depth > MAX_DEPTH:
            raise ServiceError("groups nest at most %(max_depth)s deep", path, max_depth=MAX_DEPTH)
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
                raise ServiceError("at most %(max_rules)s conditions", where, max_rules=MAX_RULES)
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
                raise ServiceError("%(key)s must be a whole number from 1 to %(limit)s",
                                   f"{path}.{key}", key=key, limit=limit)
            out[key] = int(value)
        return out

    def field_type(self, name, path: str) -> tuple[str, dict | None]:
        if not isinstance(name, str):
            raise ServiceError("field must be a field name", f"{path}.field")
        if name.startswith("custom."):
            definition = self.defs.get(name[7:])
            if definition is None:
                raise ServiceError("unknown custom field %(name)s", f"{path}.field", name=repr(name[7:]))
            return definition["type"], definition
        if name in STANDARD_TYPES:
            return STANDARD_TYPES[name], None
        if name in EXTRA_FIELDS:
            return EXTRA_FIELDS[name], None
        raise ServiceError("unknown field %(name)s", f"{path}.field", name=repr(name))

    def field_rule(self, rule: dict, path: str) -> dict:
        name = rule.get("field")
        kind, definition = self.field_type(name, path)
        operator = rule.get("operator")
        if operator not in OPERATORS[kind]:
            raise ServiceError("operator for a %(kind)s field must be one of %(operators)s", f"{path}.operator", kind=kind, operators=', '.join(OPERATORS[kind]))
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
            raise ServiceError.like(exc, where) from None


def validate(conn: Connection, conditions) -> dict:
    """The normalised condition tree, or ServiceError naming the bad part (e.g.
    conditions.rules[1].value)."""
    if conditions is None:
        conditions = {"op": "and", "rules": []}
    return Checker(conn).group(conditions, "conditions", 1)
