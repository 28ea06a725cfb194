"""Addresses that name a campaign and a subscriber, with a MAC so nobody can forge them:

- the VERP Return-Path `bounces+CAMPAIGN-SUBSCRIBER-MAC@DOMAIN` (who a bounce is about);
- the mailto List-Unsubscribe address `unsubscribe+CAMPAIGN-SUBSCRIBER-MAC@DOMAIN`.

The MAC (HMAC-SHA256 with a key derived from the app secret, 8 hex digits, different per
kind) keeps people from forging bounces or unsubscribes that would act on someone else.
sending/compose.py encodes them per message; inbound mail decodes them.
"""
from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "bounces"
UNSUBSCRIBE_PREFIX = "unsubscribe"
# What each kind's MAC is computed over (kept as the messages already sent have them).
_MAC_LABEL = {PREFIX: "verp", UNSUBSCRIBE_PREFIX: "unsub"}
_ADDRESS = re.compile(r"^(bounces|unsubscribe)\+(\d{1,10})-(\d{1,10})-([0-9a-f]{8})@", re.I)


def _mac(key: bytes, campaign_id: int, subscriber_id: int, prefix: str = PREFIX) -> str:
    return hmac.new(key, f"{_MAC_LABEL[prefix]}:{campaign_id}:{subscriber_id}".encode(),
                    hashlib.sha256).hexdigest()[:8]


def encode(key: bytes, domain: str, campaign_id: int, subscriber_id: int,
           prefix: str = PREFIX) -> str:
    """The Return-Path (or, with prefix UNSUBSCRIBE_PREFIX, the mailto unsubscribe address)."""
    mac = _mac(key, campaign_id, subscriber_id, prefix)
    return f"{prefix}+{campaign_id}-{subscriber_id}-{mac}@{domain}"


def decode_any(key: bytes, address: str) -> tuple[str, int, int] | None:
    """(prefix, campaign id, subscriber id) of one of our addresses whose MAC verifies."""
    match = _ADDRESS.match(address.strip().strip("<>"))
    if match is None:
        return None
    prefix = match.group(1).lower()
    campaign_id, subscriber_id = int(match.group(2)), int(match.group(3))
    if not hmac.compare_digest(match.group(4).lower(), _mac(key, campaign_id, subscriber_id, prefix)):
        return None
    return prefix, campaign_id, subscriber_id


def decode(key: bytes, address: str, prefix: str = PREFIX) -> tuple[int, int] | None:
    """(campaign id, subscriber id) of one of our Return-Paths (or, with prefix
    UNSUBSCRIBE_PREFIX, of a mailto unsubscribe address); None for anything else."""
    found = decode_any(key, address)
    if found is None or found[0] != prefix:
        return None
    return found[1], found[2]
