"""/api/v1: Bearer-token REST API, pydantic-validated, OpenAPI generated from the same models.

A domain's api.py declares its routes with `operation(...)`: the rule, the permission, the
pydantic models for body, query and response. The wrapper validates input, calls the view with
typed values, and records the operation for the OpenAPI document served at
/api/v1/openapi.json. Errors are RFC 9457 problem details in one shape everywhere.
"""
from __future__ import annotations

import functools
import json
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from werkzeug.exceptions import HTTPException

from altkraft_onprem.db import is_busy
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.route_permission import PUBLIC, declare, keeps_to_lists

PREFIX = "/api/v1"
MAX_ID = 2**31 - 1          # ids are INTEGER columns; larger ids in paths are 404 (app guard)
# An id in a body or query model: `user_id: Id` (or `Id | None = None`). Bounded, so that a
# huge number is a 422 naming the field instead of an overflow inside the database.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
blueprint = Blueprint("api", __name__, url_prefix=PREFIX)


# --- what a request model promises ------------------------------------------------------------
#
# The request schemas of the OpenAPI document are the models' JSON Schemas, and a request they
# call valid must be accepted (tests/api/test_schemathesis.py checks it with valid data: 2xx, or
# 404 for an id or a name that names nothing, or 409 for a clash with what exists). Rules that a
# service checks itself, with its own message (an email address, a time zone, one of two fields),
# are described on the model with these, so that the document is never looser than the server.

def _schema_only(**keywords: Any) -> dict:
    """JSON Schema keywords a service enforces (pydantic does not check them here)."""
    return {"json_schema_extra": keywords}


# An address a service checks with email_validator (its message names the problem). The pattern
# says what the document promises: dot-atom local part, a domain of letters, digits and hyphens,
# not one of the special-use names email_validator refuses (RFC 6761: .test, .local, …). Like the
# two patterns below it is the plain form that is always accepted, narrower than what the service
# takes (more dots, IDN, ports, query strings): docs/api.md says so to integrators.
EMAIL_PATTERN = (r"^[A-Za-z0-9_+-]{1,30}(\.[A-Za-z0-9_+-]{1,30})?@([A-Za-z0-9]{1,20}(-[A-Za-z0-9]{1,20})?\.)"
                 r"{1,3}(?!(arpa|invalid|local|localhost|onion|test)$)[A-Za-z]{2,20}$")
Email = Annotated[str, Field(max_length=320, **_schema_only(format="email", pattern=EMAIL_PATTERN))]
# Text that a service strips and then requires: at least one character that is not a space
# (`Field(min_length=1, json_schema_extra=NON_BLANK)`).
NON_BLANK = {"pattern": r"\S"}
# Text on one line (a subject): no line breaks.
ONE_LINE = {"not": {"pattern": "[\r\n]"}}


@functools.cache
def timezones() -> list[str]:
    """The IANA time zone names zoneinfo knows (a service refuses others by name). Listed
    when first asked — building the OpenAPI document —, not at import: reading the time zone
    database costs every start some 20 ms."""
    return sorted(zone for zone in zoneinfo.available_timezones() if "/" in zone or zone == "UTC")


def zone_enum(schema: dict[str, Any]) -> None:
    """`json_schema_extra` of a time zone field: timezones() as its enum (in the first of its
    `anyOf` when the field may also be null)."""
    (schema["anyOf"][0] if "anyOf" in schema else schema)["enum"] = timezones()


# An IANA time zone name, as zoneinfo knows it.
Timezone = Annotated[str, Field(max_length=64, json_schema_extra=zone_enum)]
# A full domain name (at least two labels, letters in the last one), as services check it.
DOMAIN_PATTERN = r"^([A-Za-z0-9]{1,20}(-[A-Za-z0-9]{1,20})?\.){1,4}[A-Za-z]{2,20}$"
# An http(s) URL whose host is a full domain name.
HTTP_URL_PATTERN = (r"^https?://([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.){1,3}[a-z]{2,10}"
                    r"(/[A-Za-z0-9._~%/-]{0,100})?$")


def exactly_one(*names: str) -> dict:
    """The JSON Schema of a model whose validator wants exactly one of `names` (by their JSON
    names) given and not null: `model_config = ConfigDict(json_schema_extra=exactly_one(...))`."""
    return {"oneOf": [{"required": [name], "properties": {
        name: {"not": {"type": "null"}}, **{other: {"type": "null"} for other in names if other != name}}}
        for name in names]}


@dataclass
class Operation:
    rule: str
    method: str
    endpoint: str
    permission: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    content_type: str = "application/json"
    multipart: type[BaseModel] | None = None
    responses: dict[int, str] | None = None     # more answers than the usual ones
    file_types: str = ""


OPERATIONS: list[Operation] = []


def problem(status: int, title: str, detail: str = "", **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def _validation_problem(exc: ValidationError, where: str) -> Response:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"]) or where
        errors.append({"field": loc, "message": err["msg"]})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem(422, "Invalid request", detail, errors=errors)


def operation(rule: str, method: str, *, permission: str, summary: str, tag: str,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              response: Any = None, status: int = 200, content_type: str = "application/json",
              multipart: type[BaseModel] | None = None,
              responses: dict[int, str] | None = None, lists: bool = False,
              file_types: str = "") -> Callable:
    """Declare an API route. The view gets `body=` / `query=` models and path parameters;
    `responses`: answers it may give besides the usual ones ({429: "why"}); `lists=True`: a
    role limited to some lists may call it (route_permission.keeps_to_lists); `file_types`: the
    media types the multipart field `file` may hold ("image/png, image/gif")."""

    def register(view: Callable) -> Callable:
        endpoint = f"{view.__module__.rsplit('.', 2)[-2]}_{view.__name__}"
        adapter = TypeAdapter(response) if response is not None else None

        @functools.wraps(view)
        def handle(**path: Any):
            kwargs: dict[str, Any] = dict(path)
            if body is not None:
                raw = request.get_data(cache=False)
                try:
                    kwargs["body"] = body.model_validate_json(raw or b"{}")
                except ValidationError as exc:
                    return _validation_problem(exc, "body")
            if query is not None:
                try:
                    kwargs["query"] = query.model_validate(request.args.to_dict())
                except ValidationError as exc:
                    return _validation_problem(exc, "query")
            if multipart is not None:
                try:
                    kwargs["form"] = multipart.model_validate(request.form.to_dict())
                except ValidationError as exc:
                    return _validation_problem(exc, "form")
            result = view(**kwargs)
            if isinstance(result, Response):
                return result
            if adapter is not None:
                # Validate first: the reply has exactly the documented fields and types.
                result = adapter.dump_python(adapter.validate_python(result, from_attributes=True),
                                             mode="json")
            out = jsonify(result)
            out.status_code = status
            return out

        declare(permission)(handle)
        if lists:
            keeps_to_lists(handle)
        blueprint.add_url_rule(rule, endpoint=endpoint, view_func=handle, methods=[method])
        OPERATIONS.append(Operation(rule, method, endpoint, permission, summary, tag, body, query,
                                    response, status, content_type, multipart, responses,
                                    file_types))
        return handle
    return register


# --- errors: one shape for everything under /api/ -------------------------------------------

def is_bad_value_for_storage(exc: Exception) -> bool:
    """A number or text the database cannot hold (Postgres DataError, SQLite int overflow):
    the client's input was out of range, not a server failure. Models should bound such
    fields (see `Id`); this is the safety net."""
    from sqlalchemy.exc import DataError, StatementError

    if isinstance(exc, DataError | OverflowError):
        return True
    return isinstance(exc, StatementError) and isinstance(exc.orig, OverflowError)


# Seconds a client is asked to wait when the database is busy (Retry-After).
BUSY_RETRY_SECONDS = 2


def busy_problem() -> Response:
    """503 + Retry-After: the database stayed busy (locked) longer than it may wait."""
    current_app.logger.warning("database busy on %s %s: answered 503", request.method, request.path)
    response = problem(503, "Service unavailable", "the database is busy; nothing was changed, "
                       "try again in a moment")
    response.headers["Retry-After"] = str(BUSY_RETRY_SECONDS)
    return response


def handle_api_error(exc: Exception) -> Response:
    if isinstance(exc, ServiceError):
        extra = {"errors": [{"field": exc.field, "message": exc.translated()}]} if exc.field else {}
        titles = {404: "Not found", 409: "Conflict", 403: "Forbidden", 429: "Too many requests"}
        return problem(exc.status, titles.get(exc.status, "Invalid request"), exc.translated(), **extra)
    if isinstance(exc, HTTPException):
        return problem(exc.code or 500, exc.name, exc.description or "")
    if is_busy(exc):
        return busy_problem()
    if is_bad_value_for_storage(exc):
        current_app.logger.warning("API input the database refused on %s %s: %s", request.method,
                                   request.path, str(getattr(exc, "orig", exc)).splitlines()[0])
        return problem(422, "Invalid request", "a value is out of range for this field")
    current_app.logger.exception("API error on %s %s", request.method, request.path)
    return problem(500, "Internal error", "the error was logged; the request was not completed")


# --- OpenAPI --------------------------------------------------------------------------------

_PATH_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_PARAM_TYPES = {"int": {"type": "integer", "minimum": 0, "maximum": MAX_ID}, None: {"type": "string"},
                "string": {"type": "string"}, "path": {"type": "string"}}


def _schemas(operations: list[Operation]) -> tuple[dict, dict]:
    """JSON Schemas of every body and response, generated together so that two models with
    one name (a trigger's Engagement and the report's) get two components, not one."""
    inputs = [((i, part), "validation", TypeAdapter(model))
              for i, op in enumerate(operations)
              for part, model in (("body", op.body), ("response", op.response)) if model is not None]
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template="#/components/schemas/{model}")
    found = ({key: schema for (key, _mode), schema in schemas.items()}, definitions.get("$defs", {}))
    # pydantic names a clash by module path (altkraft_onprem__reports__api__Engagement): shorten
    # it to reports.api.Engagement.
    text = json.dumps(list(found[0].items()) + [found[1]])
    for name in [n for n in found[1] if "__" in n]:
        short = name.removeprefix("altkraft_onprem__").replace("__", ".")
        text = text.replace(f'/{name}"', f'/{short}"').replace(f'"{name}":', f'"{short}":')
    *pairs, defs = json.loads(text)
    _close_pattern_objects([pairs, defs])
    return {tuple(key): schema for key, schema in pairs}, defs


def _close_pattern_objects(node: Any) -> None:
    """A dict whose keys have a pattern refuses other keys: say so (pydantic leaves it open)."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_objects(value)


def _plain_parameter(prop: dict) -> dict:
    """A query parameter's or form field's schema: a value is text, so no null (leave it out)."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    if "anyOf" in prop:
        variants = [v for v in prop["anyOf"] if v != {"type": "null"}]
        del prop["anyOf"]
        prop.update(variants[0] if len(variants) == 1 else {"anyOf": variants})
    if prop.get("default", "") is None:
        del prop["default"]
    return prop


def openapi_document() -> dict:
    components: dict[str, dict] = {
        "Problem": {
            "type": "object", "required": ["type", "title", "status"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "field": {"type": ["string", "null"]}, "message": {"type": "string"}}}},
            },
        }
    }
    problem_ref = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    schemas, definitions = _schemas(OPERATIONS)
    components.update(definitions)
    paths: dict[str, dict] = {}
    for index, op in enumerate(OPERATIONS):
        path = PREFIX + _PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", op.rule)
        params = [{"name": m.group(2), "in": "path", "required": True,
                   "schema": _PARAM_TYPES.get(m.group(1), {"type": "string"})}
                  for m in _PATH_PARAM.finditer(op.rule)]
        if op.query is not None:
            qschema = op.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "schema": _plain_parameter(prop),
                               "required": name in qschema.get("required", [])})
        entry: dict[str, Any] = {
            "operationId": op.endpoint, "summary": op.summary, "tags": [op.tag],
            "parameters": params,
            "x-permission": op.permission,
            "responses": {
                "400": {"description": "Malformed request", "content": problem_ref},
                "422": {"description": "Invalid input", "content": problem_ref},
            },
        }
        if op.permission != PUBLIC:
            entry["security"] = [{"bearer": []}]
            entry["responses"]["401"] = {"description": "No or bad token", "content": problem_ref}
            entry["responses"]["403"] = {"description": "The token's role lacks "
                                         f"`{op.permission}`", "content": problem_ref}
        else:
            entry["security"] = []
        if params or op.body is not None or op.multipart is not None:
            entry["responses"]["404"] = {"description": "Not found (the object, or one the "
                                         "request names)", "content": problem_ref}
        if any(p["in"] == "query" for p in params):
            # gunicorn refuses request lines over 4094 bytes before the app sees them.
            entry["responses"]["414"] = {"description": "Request line (URL) too long"}
        if op.method != "GET":
            entry["responses"]["409"] = {"description": "Conflicts with existing data",
                                         "content": problem_ref}
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": schemas[index, "body"]}}}
        if op.multipart is not None:
            schema = op.multipart.model_json_schema()
            schema["properties"] = {name: _plain_parameter(prop)
                                    for name, prop in schema["properties"].items()}
            schema["properties"]["file"] = {"type": "string", "format": "binary"}
            schema.setdefault("required", []).append("file")
            form: dict[str, Any] = {"schema": schema}
            if op.file_types:
                form["encoding"] = {"file": {"contentType": op.file_types}}
            entry["requestBody"] = {"required": True, "content": {"multipart/form-data": form}}
        for code, description in (op.responses or {}).items():
            entry["responses"][str(code)] = {"description": description, "content": problem_ref}
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {op.content_type: {"schema": schemas[index, "response"]}}
        elif op.content_type != "application/json":
            ok["content"] = {op.content_type: {"schema": {"type": "string"}}}
        entry["responses"][str(op.status)] = ok
        paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "ALTKRAFT On-Premise API", "version": "1",
                 "description": "Authenticate with `Authorization: Bearer <token>` (create tokens "
                                "under Users & roles, or `altkraft token create`). Errors are RFC 9457 "
                                "problem details. Every route names the permission it needs "
                                "(`x-permission`). No text may contain NUL (U+0000): PostgreSQL "
                                "cannot store it (a 422)."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@blueprint.route("/openapi.json")
@declare(PUBLIC)
def openapi_json():
    # Built once per process: the routes do not change after start-up.
    document = current_app.extensions.get("altkraft.openapi")
    if document is None:
        document = current_app.extensions["altkraft.openapi"] = openapi_document()
    return jsonify(document)


@blueprint.route("/docs")
@declare(PUBLIC)
def docs_page():
    return render_template("web/api_docs.html")
