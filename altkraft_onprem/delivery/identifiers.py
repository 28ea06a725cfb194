"""Header values that name a campaign's mail to mailbox providers: Feedback-ID (their feedback
loops group complaints by it) and List-Id (RFC 2919: which list a message came through)."""
from __future__ import annotations


def feedback_id(campaign_id: int, sender: str) -> str:
    """Feedback-ID: identifiers from the most specific to the sender (`delivery.feedback_id_sender`,
    else the From domain), colon-separated."""
    return f"{campaign_id}:{sender}"


def list_id(list_id: int, domain: str) -> str:
    """The list's identifier (RFC 2919 list-label "." namespace), under the sending domain."""
    return f"list{list_id}.{domain}"
