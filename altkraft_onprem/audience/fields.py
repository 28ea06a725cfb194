"""Custom field definitions; each field gets an expression index on subscribers.custom so that
segments over it stay fast on a million rows."""
from __future__ import annotations

import json

from sqlalchemy import Connection, delete, func, insert, select, text, update

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from .models import (
    FIELD_TYPES,
    FieldError,
    check_custom_key,
    custom_fields,
    custom_index_name,
    subscribers,
)


def _row(row) -> dict:
    item = dict(row._mapping)
    item["choices"] = json.loads(item["choices"] or "[]")
    return item


def list_fields(conn: Connection) -> list[dict]:
    return [_row(r) for r in conn.execute(select(custom_fields).order_by(custom_fields.c.key))]


def definitions(conn: Connection) -> dict[str, dict]:
    """key -> definition (type, choices, label)."""
    return {f["key"]: f for f in list_fields(conn)}


def get_field(conn: Connection, field_id: int) -> dict:
    row = conn.execute(select(custom_fields).where(custom_fields.c.id == field_id)).first()
    if row is None:
        raise NotFound("no such custom field")
    return _row(row)


def _clean_choices(field_type: str, choices) -> list[str]:
    if field_type != "choice":
        return []
    values = []
    for raw in choices or ():
        value = str(raw).strip()
        if value and value not in values:
            values.append(value[:200])
    if not values:
        raise ServiceError("a choice field needs at least one choice", "choices")
    if len(values) > 500:
        raise ServiceError("at most 500 choices", "choices")
    return values


def index_ddl(dialect: str, key: str) -> str:
    check_custom_key(key)        # the key is [a-z][a-z0-9_]*: safe inside DDL
    name = custom_index_name(key)
    if dialect == "postgresql":
        return f"CREATE INDEX IF NOT EXISTS {name} ON subscribers ((custom->>'{key}'))"
    return f"CREATE INDEX IF NOT EXISTS {name} ON subscribers (json_extract(custom, '$.{key}'))"


def create_field(conn: Connection, actor: Actor, key: str, label: str = "", field_type: str = "text",
                 choices=()) -> int:
    try:
        key = check_custom_key(key)
    except FieldError as exc:
        raise ServiceError.like(exc, "key") from None
    if field_type not in FIELD_TYPES:
        raise ServiceError("type must be one of %(field_types)s", "type", field_types=', '.join(FIELD_TYPES))
    if conn.execute(select(custom_fields.c.id).where(custom_fields.c.key == key)).first():
        raise Conflict("a custom field %(key)s already exists", "key", key=repr(key))
    values = _clean_choices(field_type, choices)
    field_id = conn.execute(insert(custom_fields).values(
        key=key, label=(label or key).strip()[:200], type=field_type, choices=json.dumps(values),
        created_at=utcnow()).returning(custom_fields.c.id)).scalar_one()
    conn.execute(text(index_ddl(conn.dialect.name, key)))
    record(conn, actor, "custom_field.create", "custom_field", field_id, key=key, type=field_type)
    return field_id


def update_field(conn: Connection, actor: Actor, field_id: int, *, label: str | None = None,
                 choices=None) -> None:
    field = get_field(conn, field_id)
    values = {}
    if label is not None:
        values["label"] = label.strip()[:200] or field["key"]
    if choices is not None and field["type"] == "choice":
        values["choices"] = json.dumps(_clean_choices("choice", choices))
    if values:
        conn.execute(update(custom_fields).where(custom_fields.c.id == field_id).values(**values))
        record(conn, actor, "custom_field.update", "custom_field", field_id, **values)


def delete_field(conn: Connection, actor: Actor, field_id: int) -> None:
    """Drops the definition and its index; values stay in the JSON (harmless, not shown)."""
    field = get_field(conn, field_id)
    conn.execute(delete(custom_fields).where(custom_fields.c.id == field_id))
    conn.execute(text(f"DROP INDEX IF EXISTS {custom_index_name(field['key'])}"))
    record(conn, actor, "custom_field.delete", "custom_field", field_id, key=field["key"])


def ensure_field(conn: Connection, actor: Actor, key: str, field_type: str = "text",
                 label: str = "") -> dict:
    """The definition of `key`, created on the spot when missing (imports map unknown columns)."""
    row = conn.execute(select(custom_fields).where(custom_fields.c.key == key)).first()
    if row is not None:
        return _row(row)
    return get_field(conn, create_field(conn, actor, key, label or key, field_type))


def usage_count(conn: Connection, key: str) -> int:
    check_custom_key(key)
    expr = custom_value(conn.dialect.name, key)
    return conn.execute(select(func.count()).select_from(subscribers).where(expr.is_not(None))).scalar_one()


def custom_value(dialect: str, key: str):
    """The SQL expression of one custom value, written exactly as its index is (so the planner
    uses it). The key is checked against the key pattern; values are always bound parameters."""
    from sqlalchemy import Text, literal_column, type_coerce

    check_custom_key(key)
    if dialect == "postgresql":
        return type_coerce(subscribers.c.custom.op("->>")(literal_column(f"'{key}'")), Text)
    return type_coerce(func.json_extract(subscribers.c.custom, literal_column(f"'$.{key}'")), Text)
