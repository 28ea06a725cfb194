"""Message operations: the only code that writes messages, versions and templates.

Every save of a message is a new version (who, when, a one-line diff summary); restoring an
old version saves a copy of it as the newest one, so history is never rewritten.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update

from altkraft_onprem import extensions
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, Forbidden, NotFound, ServiceError

from .models import (
    EDITORS,
    MAX_HTML,
    MAX_NAME,
    MAX_PREHEADER,
    MAX_SUBJECT,
    clean_data_source,
    diff_summary,
    message_versions,
    messages,
    templates,
    unified_diff,
)
from .render import check_version, compile_version, text_from_html_template

VERSION_FIELDS = ("subject", "preheader", "html", "text", "text_follows_html", "editor",
                  "editor_state", "data_source")


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ServiceError("a name is needed", "name")
    if len(name) > MAX_NAME:
        raise ServiceError("the name is longer than %(max_name)s characters", "name", max_name=MAX_NAME)
    return name


def _clean_content(fields: dict[str, Any]) -> dict[str, Any]:
    subject = (fields.get("subject") or "").strip()
    if not subject:
        raise ServiceError("a subject is needed", "subject")
    if len(subject) > MAX_SUBJECT or "\n" in subject or "\r" in subject:
        raise ServiceError("the subject must be one line of at most %(max_subject)s characters", "subject", max_subject=MAX_SUBJECT)
    preheader = (fields.get("preheader") or "").strip()
    if len(preheader) > MAX_PREHEADER:
        raise ServiceError("the preheader is longer than %(max_preheader)s characters", "preheader", max_preheader=MAX_PREHEADER)
    html = fields.get("html") or ""
    if len(html) > MAX_HTML:
        raise ServiceError("the HTML is larger than %(max_html)s KB", "html", max_html=MAX_HTML // 1024)
    editor = fields.get("editor") or "code"
    if editor not in EDITORS:
        raise ServiceError("editor must be one of %(editors)s", "editor", editors=', '.join(EDITORS))
    text = fields.get("text")
    follows = fields.get("text_follows_html")
    if follows is None:
        follows = text is None
    if follows or text is None:
        text = text_from_html_template(html) if html.strip() else ""
    state = fields.get("editor_state")
    if state is not None and not isinstance(state, str):
        state = json.dumps(state, ensure_ascii=False)
    data_source = clean_data_source(fields.get("data_source"))
    return {"subject": subject, "preheader": preheader, "html": html, "text": text,
            "text_follows_html": bool(follows), "editor": editor, "editor_state": state,
            "data_source": data_source}


# --- messages --------------------------------------------------------------------------------

def create_message(conn: Connection, actor: Actor, name: str, **content: Any) -> tuple[int, int]:
    """A new message with its first version: (message id, version number 1)."""
    name = _clean_name(name)
    values = _clean_content(content)
    now = utcnow()
    message_id = conn.execute(insert(messages).values(
        name=name, current_version=1, created_at=now, updated_at=now, created_by=actor.label)
    ).inserted_primary_key[0]
    conn.execute(insert(message_versions).values(
        message_id=message_id, version=1, created_at=now, created_by=actor.label,
        summary="created", **values))
    record(conn, actor, "message.create", "message", message_id, name=name)
    return message_id, 1


def save_version(conn: Connection, actor: Actor, message_id: int, name: str | None = None,
                 summary: str | None = None, **content: Any) -> int:
    """Saves the content as the message's next version and returns its number."""
    message = get_message(conn, message_id)
    current = get_version(conn, message_id, message["current_version"])
    merged = {field: current[field] for field in VERSION_FIELDS}
    merged.update({k: v for k, v in content.items() if k in VERSION_FIELDS and v is not None})
    if "text" in content and content["text"] is not None and content.get("text_follows_html") is None:
        merged["text_follows_html"] = False
    if content.get("text_follows_html") and content.get("text") is None:
        merged["text"] = None
    values = _clean_content(merged)
    number = message["current_version"] + 1
    now = utcnow()
    conn.execute(insert(message_versions).values(
        message_id=message_id, version=number, created_at=now, created_by=actor.label,
        summary=summary or diff_summary(current, values),
        **values))
    changes: dict[str, Any] = {"current_version": number, "updated_at": now}
    if name is not None:
        changes["name"] = _clean_name(name)
    # Two editors saving at once: only one of them may take this version number.
    done = conn.execute(update(messages).where(messages.c.id == message_id)
                        .where(messages.c.current_version == message["current_version"])
                        .values(**changes)).rowcount
    if done != 1:
        raise Conflict("someone else saved this message meanwhile; reload it", "version")
    record(conn, actor, "message.save", "message", message_id, version=number)
    return number


def restore_version(conn: Connection, actor: Actor, message_id: int, version: int) -> int:
    """Saves a copy of an old version as the newest one."""
    old = get_version(conn, message_id, version)
    content = {field: old[field] for field in VERSION_FIELDS}
    if content["data_source"] is None:
        content["data_source"] = {"kind": "none"}
    if content["editor_state"] is None:
        content["editor_state"] = ""        # not the newest version's visual state
    number = save_version(conn, actor, message_id, summary=f"restored version {version}", **content)
    record(conn, actor, "message.restore", "message", message_id, version=number, restored=version)
    return number


def rename_message(conn: Connection, actor: Actor, message_id: int, name: str) -> None:
    get_message(conn, message_id)
    conn.execute(update(messages).where(messages.c.id == message_id)
                 .values(name=_clean_name(name), updated_at=utcnow()))
    record(conn, actor, "message.rename", "message", message_id, name=name)


def browse_messages(conn: Connection, search: str | None = None, *, archived: bool = False,
                    limit: int | None = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of messages (newest saves first) matching `search` in the name or the current
    subject, and how many match in all; archived ones only when `archived`."""
    joined = messages.join(message_versions, (message_versions.c.message_id == messages.c.id)
                           & (message_versions.c.version == messages.c.current_version))
    where = [messages.c.archived_at.isnot(None) if archived else messages.c.archived_at.is_(None)]
    if search and search.strip():
        where.append(_search(search.strip()))
    total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    query = (select(messages, message_versions.c.subject, message_versions.c.created_by.label("saved_by"))
             .select_from(joined).where(*where)
             .order_by(messages.c.updated_at.desc(), messages.c.id.desc()).offset(offset))
    if limit is not None:
        query = query.limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()], total


def _search(text: str):
    # SQLite's lower() folds ASCII only: the typed, lower-case and capitalised forms are tried
    # too, so that "весна" finds "Весна" there as it does on Postgres.
    forms = {text, text.lower(), text.capitalize()}
    checks = [func.lower(column).contains(text.lower(), autoescape=True)
              for column in (messages.c.name, message_versions.c.subject)]
    checks += [column.contains(form, autoescape=True) for form in forms
               for column in (messages.c.name, message_versions.c.subject)]
    return or_(*checks)


def list_messages(conn: Connection, search: str | None = None) -> list[dict[str, Any]]:
    """Every message that is not archived (see browse_messages for pages)."""
    return browse_messages(conn, search, limit=None)[0]


def campaigns_using(conn: Connection, message_id: int) -> list[dict[str, Any]]:
    """Campaigns that send this message, as the campaign's message or a split-test variant's
    (campaigns answers: extensions.MESSAGE_USERS)."""
    found: dict[int, str] = {}
    for users in extensions.MESSAGE_USERS.collect(conn, message_id):
        found.update(users)
    return [{"id": key, "name": found[key]} for key in sorted(found)]


def archive_message(conn: Connection, actor: Actor, message_id: int) -> None:
    """Takes a message no campaign uses out of the list (its versions stay); Conflict naming
    the campaigns otherwise."""
    message = get_message(conn, message_id)
    users = campaigns_using(conn, message_id)
    if users:
        names = ", ".join(f"\"{c['name']}\" (#{c['id']})" for c in users[:10])
        if len(users) > 10:
            names += f", … (+{len(users) - 10})"
        raise Conflict("message %(name)s is used by campaign(s) %(names)s; it cannot be deleted "
                       "while a campaign uses it", "message_id", name=repr(message["name"]),
                       names=names)
    if message["archived_at"] is None:
        conn.execute(update(messages).where(messages.c.id == message_id).values(archived_at=utcnow()))
        record(conn, actor, "message.archive", "message", message_id, name=message["name"])


def unarchive_message(conn: Connection, actor: Actor, message_id: int) -> None:
    message = get_message(conn, message_id)
    if message["archived_at"] is not None:
        conn.execute(update(messages).where(messages.c.id == message_id).values(archived_at=None))
        record(conn, actor, "message.unarchive", "message", message_id, name=message["name"])


def get_message(conn: Connection, message_id: int) -> dict[str, Any]:
    row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
    if row is None:
        raise NotFound("message %(message_id)s does not exist", "message_id", message_id=message_id)
    return dict(row)


def require_sendable(conn: Connection, message_id: int, field: str = "message_id") -> dict[str, Any]:
    """The message a campaign (or a split-test variant) may use: it exists and is not
    archived. ServiceError on `field` otherwise."""
    try:
        message = get_message(conn, message_id)
    except NotFound:
        raise NotFound("message %(message_id)s does not exist", field,
                       message_id=message_id) from None
    if message["archived_at"] is not None:
        raise Conflict("message %(message_id)s (%(name)s) is archived: restore it from the "
                           "archived messages first", field, message_id=message_id,
                           name=message["name"])
    return message


def get_version(conn: Connection, message_id: int, version: int | None = None) -> dict[str, Any]:
    """One version of a message (the current one when version is None)."""
    if version is None:
        version = get_message(conn, message_id)["current_version"]
    row = conn.execute(select(message_versions).where(message_versions.c.message_id == message_id)
                       .where(message_versions.c.version == version)).mappings().first()
    if row is None:
        get_message(conn, message_id)
        raise NotFound("message %(message_id)s has no version %(version)s", "version", message_id=message_id, version=version)
    return dict(row)


def get_version_by_id(conn: Connection, version_id: int) -> dict[str, Any]:
    """A version by its row id (what campaigns and the delivery ledger record)."""
    row = conn.execute(select(message_versions).where(message_versions.c.id == version_id)).mappings().first()
    if row is None:
        raise NotFound("message version %(version_id)s does not exist", "version_id", version_id=version_id)
    return dict(row)


def version_links(conn: Connection, version_id: int) -> list[tuple[int, str]]:
    """(index, url as written) for every literal link of a message version, in order (the
    click tracking link index is this one)."""
    row = conn.execute(select(message_versions).where(message_versions.c.id == version_id)).mappings().first()
    if row is None:
        return []
    return list(compile_version(dict(row)).links)


def list_versions(conn: Connection, message_id: int) -> list[dict[str, Any]]:
    get_message(conn, message_id)
    query = (select(message_versions.c.id, message_versions.c.version, message_versions.c.subject,
                    message_versions.c.created_at, message_versions.c.created_by,
                    message_versions.c.summary, message_versions.c.editor)
             .where(message_versions.c.message_id == message_id)
             .order_by(message_versions.c.version.desc()))
    return [dict(row) for row in conn.execute(query).mappings()]


def compare_versions(conn: Connection, message_id: int, a: int, b: int) -> dict[str, Any]:
    """Unified diffs per part between two versions (empty list: the part is the same)."""
    old, new = get_version(conn, message_id, a), get_version(conn, message_id, b)
    diffs = {}
    for part in ("subject", "preheader", "html", "text"):
        diffs[part] = unified_diff(old[part], new[part], f"version {a}", f"version {b}")
    return {"from_version": a, "to_version": b, "diffs": diffs,
            "summary": diff_summary(old, new)}


def problems(version: dict[str, Any]) -> list[dict[str, Any]]:
    """Template problems of a version, for the editor (syntax errors, unknown variables)."""
    return [p.as_dict() for p in check_version(version)]


# --- saved templates -------------------------------------------------------------------------

def list_templates(conn: Connection) -> list[dict[str, Any]]:
    query = select(templates).order_by(templates.c.builtin.desc(), templates.c.name)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_template(conn: Connection, template_id: int) -> dict[str, Any]:
    row = conn.execute(select(templates).where(templates.c.id == template_id)).mappings().first()
    if row is None:
        raise NotFound("template %(template_id)s does not exist", "template_id", template_id=template_id)
    return dict(row)


def _template_name_free(conn: Connection, name: str, other_than: int | None = None) -> None:
    query = select(templates.c.id).where(templates.c.name == name)
    if other_than is not None:
        query = query.where(templates.c.id != other_than)
    if conn.execute(query).first() is not None:
        raise Conflict("a template named %(name)s exists already", "name", name=repr(name))


def _template_subject(subject: str | None) -> str:
    """A template's subject may be empty (the message gets its name), else one line."""
    subject = (subject or "").strip()
    if len(subject) > MAX_SUBJECT or "\n" in subject or "\r" in subject:
        raise ServiceError("the subject must be one line of at most %(max_subject)s characters", "subject", max_subject=MAX_SUBJECT)
    return subject


def create_template(conn: Connection, actor: Actor, name: str, html: str, subject: str = "",
                    preheader: str = "", description: str = "", editor_state: Any = None) -> int:
    name = _clean_name(name)
    subject = _template_subject(subject)
    _template_name_free(conn, name)
    if len(html or "") > MAX_HTML:
        raise ServiceError("the HTML is larger than %(max_html)s KB", "html", max_html=MAX_HTML // 1024)
    if editor_state is not None and not isinstance(editor_state, str):
        editor_state = json.dumps(editor_state, ensure_ascii=False)
    now = utcnow()
    template_id = conn.execute(insert(templates).values(
        name=name, description=description or "", subject=subject or "", preheader=preheader or "",
        html=html or "", editor_state=editor_state, builtin=False, created_at=now, updated_at=now,
        created_by=actor.label)).inserted_primary_key[0]
    record(conn, actor, "template.create", "template", template_id, name=name)
    return template_id


def update_template(conn: Connection, actor: Actor, template_id: int, **changes: Any) -> None:
    template = get_template(conn, template_id)
    if template["builtin"]:
        raise Forbidden("built-in templates cannot be changed; save a copy instead", "template_id")
    values = {k: v for k, v in changes.items()
              if k in ("name", "description", "subject", "preheader", "html", "editor_state") and v is not None}
    if "name" in values:
        values["name"] = _clean_name(values["name"])
        _template_name_free(conn, values["name"], template_id)
    if "subject" in values:
        values["subject"] = _template_subject(values["subject"])
    if "editor_state" in values and not isinstance(values["editor_state"], str):
        values["editor_state"] = json.dumps(values["editor_state"], ensure_ascii=False)
    conn.execute(update(templates).where(templates.c.id == template_id)
                 .values(updated_at=utcnow(), **values))
    record(conn, actor, "template.update", "template", template_id, fields=sorted(values))


def delete_template(conn: Connection, actor: Actor, template_id: int) -> None:
    template = get_template(conn, template_id)
    if template["builtin"]:
        raise Forbidden("built-in templates cannot be deleted", "template_id")
    conn.execute(delete(templates).where(templates.c.id == template_id))
    record(conn, actor, "template.delete", "template", template_id, name=template["name"])


def message_from_template(conn: Connection, actor: Actor, template_id: int, name: str) -> tuple[int, int]:
    template = get_template(conn, template_id)
    return create_message(conn, actor, name, subject=template["subject"].strip() or name,
                          preheader=template["preheader"], html=template["html"],
                          editor="visual" if template["editor_state"] else "code",
                          editor_state=template["editor_state"])
