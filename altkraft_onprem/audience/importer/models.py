"""Import runs and their rejected rows (tables owned by the importer)."""
from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime

STATES = ("queued", "running", "finished", "failed")
MODES = ("add", "update", "upsert")
STATUSES = ("confirmed", "unconfirmed")
# Every count an import reports, in the order the report shows them.
COUNT_KEYS = ("added", "updated", "unchanged", "skipped", "duplicates", "invalid", "suppressed")

imports = Table(
    "imports", metadata,
    Column("id", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("filename", String(300), nullable=False),
    Column("path", Text, nullable=False, default=""),          # the upload, under data_dir/imports
    Column("list_ids", Text, nullable=False, default="[]"),    # JSON list of list ids
    Column("mode", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("mapping", Text, nullable=False, default="{}"),     # JSON {column: target}
    Column("options", Text, nullable=False, default="{}"),     # JSON {has_header, encoding, delimiter}
    Column("counts", Text, nullable=False, default="{}"),      # JSON {COUNT_KEYS: int}
    Column("rows_done", Integer, nullable=False, default=0),
    Column("rows_total", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_by", String(320), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    # Stamped while the import runs: a stale one means its worker died (see watchdog.py).
    Column("heartbeat_at", UTCDateTime(), nullable=True),
)

import_rejects = Table(
    "import_rejects", metadata,
    Column("id", Integer, primary_key=True),
    Column("import_id", Integer, ForeignKey("imports.id", ondelete="CASCADE"), nullable=False),
    Column("line", Integer, nullable=False),                   # 0: about a whole member
    Column("member", String(300), nullable=False, default=""),  # archive member or sheet
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False, default=""),
    Index("ix_import_rejects_import_id", "import_id"),
)
