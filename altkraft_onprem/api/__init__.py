"""/api/v1: Bearer-token REST API, pydantic-validated, OpenAPI generated from the same models.

A domain's api.py declares its routes with `operation(...)`: the rule, the permission, the
pydantic models for body, query and response. The wrapper validates input, calls the view with
typed values, and records the operation for the OpenAPI document served at
/api/v1/openapi.json. Errors are RFC 9457 problem details in one shape everywhere.
"""
from __future__ import annotations

import functools
import re
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
              responses: dict[int, str] | None = None, lists: bool = False) -> Callable:
    """Declare an API route. The view gets `body=` / `query=` models and path parameters;
    `responses`: answers it may give besides the usual ones ({429: "why"}); `lists=True`: a
    role limited to some lists may call it (route_permission.keeps_to_lists)."""

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
                                    response, status, content_type, multipart, responses))
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


def _schema(model: Any, components: dict) -> dict:
    """JSON Schema for a model or type, its definitions lifted into components."""
    adapter = TypeAdapter(model)
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    if isinstance(model, type) and issubclass(model, BaseModel):
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    return schema


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
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        path = PREFIX + _PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", op.rule)
        params = [{"name": m.group(2), "in": "path", "required": True,
                   "schema": _PARAM_TYPES.get(m.group(1), {"type": "string"})}
                  for m in _PATH_PARAM.finditer(op.rule)]
        if op.query is not None:
            qschema = op.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                prop = {k: v for k, v in prop.items() if k != "title"}
                params.append({"name": name, "in": "query", "schema": prop,
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
        if any(p["in"] == "path" for p in params) or op.body is not None:
            entry["responses"]["404"] = {"description": "Not found (the object, or one the body "
                                         "names)", "content": problem_ref}
        if any(p["in"] == "query" for p in params):
            # gunicorn refuses request lines over 4094 bytes before the app sees them.
            entry["responses"]["414"] = {"description": "Request line (URL) too long"}
        if op.method != "GET":
            entry["responses"]["409"] = {"description": "Conflicts with existing data",
                                         "content": problem_ref}
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _schema(op.body, components)}}}
        if op.multipart is not None:
            schema = op.multipart.model_json_schema()
            schema["properties"]["file"] = {"type": "string", "format": "binary"}
            schema.setdefault("required", []).append("file")
            entry["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
        for code, description in (op.responses or {}).items():
            entry["responses"][str(code)] = {"description": description, "content": problem_ref}
        ok: dict[str, Any] = {"description": "OK"}
        if op.response is not None:
            ok["content"] = {op.content_type: {"schema": _schema(op.response, components)}}
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
                                "(`x-permission`)."},
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
