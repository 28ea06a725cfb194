"""What an envelope recipient of the receiver means: a VERP bounce address, a mailto
unsubscribe address (both only when their MAC verifies), a feedback-loop address or the DMARC
report address. Anything else is refused at RCPT time (no backscatter, no open relay)."""
from __future__ import annotations

from dataclasses import dataclass

from altkraft_onprem.delivery import verp
from altkraft_onprem.tracking.tokens import tracking_key

BOUNCE, UNSUBSCRIBE, FBL, DMARC = "bounce", "unsubscribe", "fbl", "dmarc"


@dataclass(frozen=True)
class Mailbox:
    kind: str
    campaign_id: int | None = None
    subscriber_id: int | None = None


class Recogniser:
    """Built once per settings; `recognise` runs per RCPT and per message."""

    def __init__(self, settings):
        self.key = tracking_key(settings)
        self.domains = {d.strip().lower() for d in (settings["delivery.bounce_domain"],
                                                      settings["inbound.bounce_domain"]) if d.strip()}
        if self.domains:        # a sending domain's own bounce domain (the Settings page)
            self.domains |= {d["bounce_domain"].lower() for d in settings["delivery.sending_domains"]
                             if d["bounce_domain"]}
        self.fbl = {a.strip().lower() for a in settings["inbound.fbl_addresses"] if a.strip()}
        self.dmarc = settings["inbound.dmarc_address"].strip().lower()

    def recognise(self, address: str) -> Mailbox | None:
        address = (address or "").strip().strip("<>").lower()
        if not address or len(address) > 320:
            return None
        if address in self.fbl:
            return Mailbox(FBL)
        if self.dmarc and address == self.dmarc:
            return Mailbox(DMARC)
        if self.domains and address.rpartition("@")[2] not in self.domains:
            return None
        found = verp.decode_any(self.key, address)
        if found is None:
            return None
        prefix, campaign_id, subscriber_id = found
        return Mailbox(UNSUBSCRIBE if prefix == verp.UNSUBSCRIBE_PREFIX else BOUNCE,
                       campaign_id, subscriber_id)
