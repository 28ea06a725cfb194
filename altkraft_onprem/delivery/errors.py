"""Delivery failures, classified the way the sender acts on them."""
from __future__ import annotations

import re


class DeliveryError(Exception):
    """A message could not be handed over; str() is the reason shown to people.

    `temporary` (4xx, connection trouble) means retry later; otherwise it is permanent
    (5xx, bad message). `relays_down` is set when no relay could be reached at all.
    `in_doubt` is set when the connection broke after the message data was sent, so the
    relay may have accepted it. `busy`: every relay's connections are in use by other
    processes of the installation (wait for one).
    """

    def __init__(self, message: str, *, temporary: bool = False, code: int | None = None,
                 relays_down: bool = False, in_doubt: bool = False, busy: bool = False):
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.code = code
        self.relays_down = relays_down
        self.in_doubt = in_doubt
        self.busy = busy


# How a relay's refusal reads in the ledger's reply (smtp.py and stream.py write it so).
_REFUSAL = re.compile(r"^relay \S+ answered [^:]{1,40}: ([45]\d\d) (.*)$", re.S)


def refusal(reply: str | None) -> tuple[int, str] | None:
    """(SMTP code, text) when a ledger reply is a relay's refusal of the message."""
    found = _REFUSAL.match(reply or "")
    return (int(found.group(1)), found.group(2).strip()) if found else None
