"""REST route of the pre-send checks: GET /api/v1/messages/{id}/checks."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from altkraft_onprem import db
from altkraft_onprem.api import EMAIL_PATTERN, MAX_ID, operation
from altkraft_onprem.config import current_settings
from altkraft_onprem.db.types import utcnow

from . import presend

TAG = "Messages"


class ChecksQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(None, ge=1, le=MAX_ID, description="The version to check; default the "
                                "current one")
    from_email: EmailStr | None = Field(None, json_schema_extra={"pattern": EMAIL_PATTERN},
                                        description="The From address it would be sent "
                                        "with (its domain's DKIM key signs the sample); default "
                                        "audience.from_email")


class FindingOut(BaseModel):
    code: Literal[presend.CODES] = Field(  # type: ignore[valid-type]
        description="spam_score (SpamAssassin), spam_score_unavailable (spamd not installed or "
        "not answering), link_domain_listed / link_domains_unchecked (domain blocklists), "
        "no_text_part, gmail_clipping (HTML over 102 KB as sent), image_text_ratio, "
        "dkim_not_verified / dkim_unchecked (a composed sample verified against DNS), "
        "no_unsubscribe_link, not_composed")
    severity: Literal[presend.SEVERITIES] = Field(  # type: ignore[valid-type]
        description="block only where an administrator set it "
        "(deliverability.presend_block_spam_score, deliverability.presend_block_codes): a "
        "campaign with a blocking finding does not start")
    detail: str


class ChecksOut(BaseModel):
    message_id: int
    version: int
    from_email: str
    checked_at: datetime
    blocked: bool = Field(description="Whether a campaign sending it would be refused at start")
    findings: list[FindingOut]


@operation("/messages/<int:message_id>/checks", "GET", permission="messages:read", tag=TAG,
           summary="Pre-send checks: a sample composed as a campaign composes it, scored by "
                   "SpamAssassin, its DKIM verified, size, text part, images, links, unsubscribe",
           query=ChecksQuery, response=ChecksOut)
def message_checks(message_id: int, query: ChecksQuery):
    settings = current_settings()
    sender = str(query.from_email) if query.from_email else presend.default_from(settings)
    with db.read(db.get_engine()) as conn:
        row = presend.message_version(conn, message_id, query.version)
    found = presend.check_version(settings, row, sender)
    return {"message_id": message_id, "version": row["version"], "from_email": sender,
            "checked_at": utcnow(), "blocked": bool(presend.blocked(found)),
            "findings": [f.as_dict() for f in found]}
