"""Bulk upsert of API records (up to MAX_RECORDS a call): one result per record, in order.

Idempotent by email: sending the same records again reports them "unchanged".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record as audit
from altkraft_onprem.audience import lists as list_service
from altkraft_onprem.audience.models import STANDARD_FIELDS, lists
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError

from .models import MODES, STATUSES
from .service import BATCH, custom_definitions
from .validate import RowError, validate_record
from .writer import BatchWriter, Record, WriteOptions

MAX_RECORDS = 10_000
KNOWN_KEYS = frozenset(STANDARD_FIELDS) | {"fields"}
# What an API client sees: "skipped" (mode says leave it) is reported as unchanged + why.
API_STATUS = {"added": "added", "updated": "updated", "unchanged": "unchanged",
              "skipped": "unchanged", "suppressed": "suppressed"}


def import_records(conn: Connection, actor: Actor, records: Sequence[Mapping], *, list_ids,
                   mode: str = "upsert", status: str = "confirmed") -> tuple[list[dict], list]:
    """Validates and writes the records; returns (results, confirmations to send) where each
    result is {"email", "status", "error"} and confirmations are (subscriber_id, list_id)."""
    if mode not in MODES:
        raise ServiceError("mode must be one of %(modes)s", "mode", modes=', '.join(MODES))
    if status not in STATUSES:
        raise ServiceError("status must be one of %(statuses)s", "status", statuses=', '.join(STATUSES))
    if len(records) > MAX_RECORDS:
        raise ServiceError("at most %(max_records)s subscribers per call", "subscribers", max_records=MAX_RECORDS)
    list_ids = list_service.existing_list_ids(conn, list_ids) if list_ids else []
    custom = custom_definitions(conn)
    double = frozenset(r.id for r in conn.execute(
        lists.select().where(lists.c.id.in_(list_ids), lists.c.optin == "double")))
    writer = BatchWriter(WriteOptions(list_ids=list_ids, mode=mode, status=status, source="api",
                                      activity={"api": actor.label}, consent_form="API import",
                                      double_optin=double))
    results: list[dict | None] = [None] * len(records)
    first_index: dict[str, int] = {}
    valid: list[tuple[int, Record]] = []
    for i, item in enumerate(records):
        raw_email = item.get("email") if isinstance(item, Mapping) else None
        shown = raw_email if isinstance(raw_email, str) else ""
        try:
            if not isinstance(item, Mapping):
                raise RowError("each subscriber must be a JSON object")
            unknown = sorted(set(item) - KNOWN_KEYS)
            if unknown:
                raise RowError(f"unknown field {unknown[0]!r} (custom fields go under \"fields\")")
            email, values, custom_values = validate_record(item, custom)
        except RowError as exc:
            results[i] = {"email": shown, "status": "invalid", "error": str(exc)}
            continue
        if email in first_index:
            results[i] = {"email": email, "status": "invalid",
                          "error": f"duplicate of subscriber {first_index[email]} in this call"}
            continue
        first_index[email] = i
        valid.append((i, Record(email, values, custom_values)))
    now = utcnow()
    for start in range(0, len(valid), BATCH):
        chunk = valid[start:start + BATCH]
        outcomes = writer.write(conn, [r for _, r in chunk], now)
        for (i, record), outcome in zip(chunk, outcomes, strict=True):
            results[i] = {"email": record.email, "status": API_STATUS[outcome.status],
                          "error": outcome.error}
    summary: dict[str, int] = {}
    for result in results:
        summary[result["status"]] = summary.get(result["status"], 0) + 1
    audit(conn, actor, "subscribers.import", "list", ",".join(map(str, list_ids)), mode=mode,
          status=status, counts=summary)
    return results, writer.confirmations
