"""What the Inbound page shows about the intake: each way in, and the messages waiting for a
person (unmatched, to review, unreadable)."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Connection, func, select

from altkraft_onprem.db.types import utcnow

from .imap import mailbox_status
from .models import SOURCES, inbound_messages
from .providers import CONFIGURED as HOOK_SETTINGS

FOR_PEOPLE = ("unmatched", "review", "failed")


def intake_status(conn: Connection, settings) -> list[dict]:
    """Per way in: stored in the last 24 hours, waiting for the pipeline, the last arrival,
    and how it is configured."""
    m = inbound_messages.c
    day_ago = utcnow() - timedelta(days=1)
    last = dict(conn.execute(select(m.source, func.max(m.received_at)).group_by(m.source)).all())
    recent = dict(conn.execute(select(m.source, func.count()).where(m.received_at >= day_ago)
                               .group_by(m.source)).all())
    waiting = dict(conn.execute(select(m.source, func.count()).where(m.state == "new")
                                .group_by(m.source)).all())
    mailboxes = mailbox_status(conn, settings)
    configured = {
        "smtp": settings["inbound.smtp_listen"],
        "imap": ", ".join(m["mailbox"] for m in mailboxes),
        "webhook": ", ".join(["POST /api/v1/bounces"] + [
            f"/hooks/inbound/{name}" for name, key in HOOK_SETTINGS.items() if settings[key]]),
        "replay": "altkraft inbound replay",
    }
    errors = {"imap": "; ".join(f"{m['mailbox']}: {m['error']}" for m in mailboxes if m["error"])}
    return [{"source": source, "last": last.get(source), "day": recent.get(source, 0),
             "waiting": waiting.get(source, 0), "configured": configured[source],
             "error": errors.get(source, "")} for source in SOURCES]


def waiting_for_people(conn: Connection, limit: int = 50) -> list[dict]:
    m = inbound_messages.c
    rows = conn.execute(select(m.id, m.received_at, m.source, m.rcpt, m.mail_from, m.subject,
                               m.state, m.outcome, m.detail)
                        .where(m.state.in_(FOR_PEOPLE)).order_by(m.id.desc()).limit(limit))
    out = []
    for row in rows:
        item = dict(row._mapping)
        item["notes"] = json.loads(item.pop("detail") or "{}").get("notes", [])
        out.append(item)
    return out
