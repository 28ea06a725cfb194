"""The latest result of every check, and what got worse: a regression (pass or warn before,
fail or missing now) raises an alert (the Deliverability alerts inbound keeps too), a
`deliverability.regressed` domain event (webhooks, through the automation outbox) and, after
the commit, one email to the administrators. "Could not check" never counts: it is compared
with nothing and leaves the last known status as it was."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from altkraft_onprem import events
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery.dnsquery import Check
from altkraft_onprem.inbound import monitor

from .models import check_results

GOOD = ("pass", "warn")
BAD = ("fail", "missing")


@dataclass(frozen=True)
class Regression:
    kind: str
    subject: str
    check: str
    status: str
    previous: str
    detail: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "check": self.check,
                "status": self.status, "previous": self.previous, "detail": self.detail}


def store(conn: Connection, kind: str, subject: str, check: str, result: Check,
          now: datetime | None = None) -> Regression | None:
    """Keeps the result as the latest of (kind, subject, check); returns the regression it is."""
    now = now or utcnow()
    row = conn.execute(select(check_results).where(
        check_results.c.kind == kind, check_results.c.subject == subject,
        check_results.c.check == check)).first()
    known = None if result.status == "unknown" else result.status
    values = {"status": result.status, "detail": result.detail[:4000], "fix": result.fix[:4000],
              "checked_at": now}
    if row is None:
        conn.execute(insert(check_results).values(kind=kind, subject=subject, check=check,
                                                  since=now, last_known=known, alerted=False,
                                                  **values))
        return None
    regressed = result.status in BAD and row.last_known in GOOD
    alerted = True if regressed else (False if result.status in GOOD else row.alerted)
    conn.execute(update(check_results).where(check_results.c.id == row.id).values(
        since=now if result.status != row.status else row.since,
        last_known=known or row.last_known, alerted=alerted, **values))
    if not regressed:
        return None
    return Regression(kind, subject, check, result.status, row.last_known, result.detail)


def raise_alerts(conn: Connection, regressions: list[Regression]) -> None:
    """The alert and the domain event of each regression, in this transaction."""
    for found in regressions:
        if found.kind == "domain":
            monitor.raise_alert(conn, "dns", found.status, None, found.check[:16],
                                f"{found.subject} {found.check}: {found.previous} -> "
                                f"{found.status}: {found.detail}", subject=f"{found.subject} {found.check}")
        else:
            monitor.raise_alert(conn, "blocklist", found.status, None, found.kind,
                                found.detail, subject=f"{found.subject} {found.check}"[:255])
        events.DELIVERABILITY_REGRESSED.emit(conn, **found.as_dict())


def latest(conn: Connection, kind: str, subject: str | None = None) -> list[dict]:
    query = select(check_results).where(check_results.c.kind == kind)
    if subject is not None:
        query = query.where(check_results.c.subject == subject)
    rows = conn.execute(query.order_by(check_results.c.subject, check_results.c.id))
    return [dict(r._mapping) for r in rows]


def open_problems(conn: Connection, limit: int = 5) -> tuple[int, list[dict]]:
    """(how many, the first few) regressions still not fixed: what the banner says."""
    where = (check_results.c.alerted.is_(True), check_results.c.status.in_(BAD))
    rows = conn.execute(select(check_results).where(*where)
                        .order_by(check_results.c.since.desc())).all()
    return len(rows), [dict(r._mapping) for r in rows[:limit]]


def forget(conn: Connection, kind: str, subject: str) -> None:
    """A domain that is gone: its results go too."""
    conn.execute(delete(check_results).where(check_results.c.kind == kind,
                                             check_results.c.subject == subject))
