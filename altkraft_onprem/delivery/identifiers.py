"""Header values that name a campaign's mail to mailbox providers: Feedback-ID (their feedback
loops group complaints by it) and List-Id (RFC 2919: which list a message came through)."""
from __future__ import annotations

MAIL_TYPE = "campaign"


def feedback_id(campaign_id: int, sender: str, list_ids=()) -> str:
    """Feedback-ID in Gmail's CampaignId:CustomerId:MailType:SenderId form: the campaign, the
    audience it went to ("list7", or "lists" for several — an appliance has no customers, its
    lists are what a complaint rate is worth knowing per), the kind of mail, and the sender
    (`delivery.feedback_id_sender`, else the From domain), which Gmail requires to stay the same."""
    lists = list(list_ids or [])
    customer = f"list{lists[0]}" if len(lists) == 1 else "lists"
    return f"{campaign_id}:{customer}:{MAIL_TYPE}:{sender}"


def list_id(list_id: int, domain: str) -> str:
    """The list's identifier (RFC 2919 list-label "." namespace), under the sending domain."""
    return f"list{list_id}.{domain}"
