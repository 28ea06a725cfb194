"""DMARC aggregate reports: read with parsedmarc (offline: no DNS or network lookups), stored per
report and per day, source IP and result; the Inbound page sums them per day and source IP.

Attachments are measured before anything unpacks them: a gzip or zip that would unpack to more
than MAX_XML_BYTES (or a zip with many members) is refused as a zip bomb.
"""
from __future__ import annotations

import io
import zipfile
import zlib
from datetime import UTC, datetime

from sqlalchemy import Connection, case, func, insert, select

from .models import dmarc_reports, dmarc_rows
from .parse import read

MAX_XML_BYTES = 20 * 1024 * 1024
MAX_MEMBERS = 10


class DmarcError(ValueError):
    """A message at the DMARC address that is not a readable aggregate report (str: why)."""


def _check_attachments(raw: bytes) -> None:
    for part in read(raw).walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True) or b""
        if data[:2] == b"\x1f\x8b":
            unpack = zlib.decompressobj(16 + zlib.MAX_WBITS)
            unpack.decompress(data, MAX_XML_BYTES + 1)
            if unpack.unconsumed_tail:
                raise DmarcError(f"a gzip attachment unpacks to more than {MAX_XML_BYTES // 2**20} MB")
        elif data[:4] == b"PK\x03\x04":
            try:
                members = zipfile.ZipFile(io.BytesIO(data)).infolist()
            except zipfile.BadZipFile:
                raise DmarcError("a zip attachment is damaged") from None
            if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_XML_BYTES:
                raise DmarcError(f"a zip attachment unpacks to more than {MAX_XML_BYTES // 2**20} MB "
                                 f"or {MAX_MEMBERS} files")


def read_report(raw: bytes) -> dict:
    """The aggregate report in a message: {org_name, report_id, domain, policy, begin, end,
    rows: [{day, source_ip, header_from, count, disposition, dkim, spf, passed}]}."""
    import parsedmarc

    _check_attachments(raw)
    try:
        parsed = parsedmarc.parse_report_email(raw, offline=True, always_use_local_files=True)
    except Exception as exc:  # noqa: BLE001 - parsedmarc raises its own and the XML parser's errors
        raise DmarcError(f"not a DMARC aggregate report: {str(exc)[:300]}") from None
    if parsed.get("report_type") != "aggregate":
        raise DmarcError(f"a DMARC {parsed.get('report_type')} report (only aggregate reports are read)")
    report = parsed["report"]
    meta, policy = report["report_metadata"], report["policy_published"]
    rows = []
    for record in report["records"]:
        evaluated = record["policy_evaluated"]
        begin = str(record.get("interval_begin") or meta["begin_date"])
        rows.append({"day": begin[:10], "source_ip": str(record["source"]["ip_address"])[:45],
                     "header_from": str(record["identifiers"].get("header_from") or "")[:255],
                     "count": int(record["count"]), "disposition": str(evaluated.get("disposition") or "none")[:16],
                     "dkim": str(evaluated.get("dkim") or "fail")[:8], "spf": str(evaluated.get("spf") or "fail")[:8],
                     "passed": bool(record.get("alignment", {}).get("dmarc"))})
    return {"org_name": str(meta["org_name"])[:200], "report_id": str(meta["report_id"])[:200],
            "domain": str(policy["domain"])[:255], "policy": str(policy.get("p") or "")[:16],
            "begin": _utc(meta["begin_date"]), "end": _utc(meta["end_date"]), "rows": rows}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)


def store(conn: Connection, inbound_id: int | None, report: dict) -> int | None:
    """Stores a report and its rows; None when that report was stored before."""
    known = conn.execute(select(dmarc_reports.c.id).where(
        dmarc_reports.c.org_name == report["org_name"],
        dmarc_reports.c.report_id == report["report_id"])).scalar()
    if known is not None:
        return None
    stored = conn.execute(insert(dmarc_reports).values(
        inbound_id=inbound_id, org_name=report["org_name"], report_id=report["report_id"],
        domain=report["domain"], policy=report["policy"], begin_at=report["begin"],
        end_at=report["end"]).returning(dmarc_reports.c.id)).scalar_one()
    if report["rows"]:
        conn.execute(insert(dmarc_rows), [{**row, "report_id": stored} for row in report["rows"]])
    return stored


def summary(conn: Connection, days: int = 30) -> dict:
    """Messages that passed and failed DMARC per day, and per source IP (busiest first)."""
    r = dmarc_rows.c
    passed = func.sum(case((r.passed.is_(True), r.count), else_=0))
    failed = func.sum(case((r.passed.is_(True), 0), else_=r.count))
    by_day = conn.execute(select(r.day, passed, failed).group_by(r.day).order_by(r.day.desc())
                          .limit(days)).all()
    by_ip = conn.execute(select(r.source_ip, passed, failed, func.max(r.day)).group_by(r.source_ip)
                         .order_by(func.sum(r.count).desc()).limit(50)).all()
    return {"days": [{"day": d, "passed": int(p or 0), "failed": int(f or 0)} for d, p, f in reversed(by_day)],
            "sources": [{"source_ip": ip, "passed": int(p or 0), "failed": int(f or 0), "last_day": last}
                        for ip, p, f, last in by_ip]}
