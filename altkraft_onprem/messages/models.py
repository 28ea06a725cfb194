"""Messages, their versions, saved templates and the media library: tables and pure rules."""
from __future__ import annotations

import difflib
import json
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import JSONText, UTCDateTime
from altkraft_onprem.errors import ServiceError

EDITORS = ("visual", "code")
MAX_NAME = 200
MAX_SUBJECT = 998          # RFC 5322 line limit; the UI warns much earlier
MAX_PREHEADER = 500
MAX_HTML = 2 * 1024 * 1024

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("archived_at", UTCDateTime(), nullable=True),    # out of the list; versions kept
)

message_versions = Table(
    "message_versions", metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False, default=""),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False, default=""),
    Column("text_follows_html", Boolean, nullable=False, default=True),
    Column("editor", String(10), nullable=False, default="code"),
    Column("editor_state", Text, nullable=True),      # GrapesJS project JSON (visual editor)
    Column("data_source", JSONText, nullable=True),   # external data for {{ data.… }}, see clean_data_source
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(320), nullable=False),
    Column("summary", Text, nullable=False, default=""),
    UniqueConstraint("message_id", "version", name="uq_message_versions_message_id"),
)

templates = Table(
    "templates", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("subject", Text, nullable=False, default=""),
    Column("preheader", Text, nullable=False, default=""),
    Column("html", Text, nullable=False),
    Column("editor_state", Text, nullable=True),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("created_by", String(320), nullable=False),
)

media = Table(
    "media", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False),             # the uploaded file name
    Column("stored_name", String(80), nullable=False, unique=True),  # under DATA_DIR/media
    Column("content_type", String(50), nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("created_by", String(320), nullable=False),
)

DATA_KINDS = ("none", "document", "url", "per_subscriber")


def clean_data_source(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validates an external-data declaration: {"kind", "document"|"url"|"url_template"}."""
    if not raw or raw.get("kind", "none") == "none":
        return None
    kind = raw.get("kind")
    if kind not in DATA_KINDS:
        raise ServiceError("data source kind must be one of %(data_kinds)s", "data_source.kind", data_kinds=', '.join(DATA_KINDS))
    if kind == "document":
        document = raw.get("document")
        if isinstance(document, str):
            try:
                document = json.loads(document)
            except ValueError as exc:
                raise ServiceError("the pasted JSON is not valid: %(exc)s", "data_source.document", exc=exc) from None
        if not isinstance(document, dict):
            raise ServiceError("the pasted JSON must be an object ({…})", "data_source.document")
        return {"kind": kind, "document": document}
    key = "url" if kind == "url" else "url_template"
    url = str(raw.get(key) or "").strip()
    if not url.startswith(("http://", "https://")):
        raise ServiceError("an http:// or https:// URL is needed", f"data_source.{key}")
    return {"kind": kind, key: url}


def diff_summary(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """One line for the version list: which parts changed and by how many lines."""
    if old is None:
        return "created"
    parts = []
    for field in ("subject", "preheader"):
        if (old.get(field) or "") != (new.get(field) or ""):
            parts.append(f"{field} changed")
    for field in ("html", "text"):
        before, after = (old.get(field) or "").splitlines(), (new.get(field) or "").splitlines()
        if before == after:
            continue
        added = removed = 0
        for line in difflib.unified_diff(before, after, lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        parts.append(f"{field} +{added} −{removed} lines")
    if (old.get("data_source") or None) != (new.get("data_source") or None):
        parts.append("data source changed")
    if old.get("text_follows_html") != new.get("text_follows_html"):
        parts.append("text follows HTML" if new.get("text_follows_html") else "text edited by hand")
    return "; ".join(parts) or "no changes"


def unified_diff(old: str, new: str, old_label: str, new_label: str) -> list[str]:
    return list(difflib.unified_diff((old or "").splitlines(), (new or "").splitlines(),
                                     old_label, new_label, lineterm="", n=3))
