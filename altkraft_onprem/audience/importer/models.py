"""Import runs and their rejected rows (tables owned by the importer)."""
from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text, false

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
    # The import records what it changes (import_changes), so that it can be undone; imports
    # from before that was recorded cannot be.
    Column("undoable", Boolean, nullable=False, default=False, server_default=false()),
    Column("undone_at", UTCDateTime(), nullable=True),
    Column("undo_result", Text, nullable=True),                # JSON: what the undo did (undo.py)
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

# What an import changed in people who existed already, recorded as it writes (writer.py),
# for undo.py. The people it added need no row: their `source` is "import:<id>" (IMPORT_SOURCE).
#   joined:  a membership (list_id) it added;
#   updated: fields it changed: changes = JSON {"fields": {"field" or "custom.KEY": [before,
#            after]}, "trash": true when it brought the person back from the trash}.
# `at` is when the batch was written: a row changed after it was edited since (an undo keeps it).
CHANGE_KINDS = ("joined", "updated")
IMPORT_SOURCE = "import:%d"
import_changes = Table(
    "import_changes", metadata,
    Column("id", Integer, primary_key=True),
    Column("import_id", Integer, ForeignKey("imports.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("list_id", Integer, nullable=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("changes", Text, nullable=True),
    Index("ix_import_changes_import_id_kind", "import_id", "kind"),
    Index("ix_import_changes_subscriber_id", "subscriber_id"),
)
