"""Delivery failures, classified the way the sender acts on them."""
from __future__ import annotations


class DeliveryError(Exception):
    """A message could not be handed over; str() is the reason shown to people.

    `temporary` (4xx, connection trouble) means retry later; otherwise it is permanent
    (5xx, bad message). `relays_down` is set when no relay could be reached at all.
    `in_doubt` is set when the connection broke after the message data was sent, so the
    relay may have accepted it.
    """

    def __init__(self, message: str, *, temporary: bool = False, code: int | None = None,
                 relays_down: bool = False, in_doubt: bool = False):
        super().__init__(message)
        self.message = message
        self.temporary = temporary
        self.code = code
        self.relays_down = relays_down
        self.in_doubt = in_doubt
