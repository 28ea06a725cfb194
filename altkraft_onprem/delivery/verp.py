"""VERP Return-Path: bounces+CAMPAIGN-SUBSCRIBER-MAC@DOMAIN names who a bounce is about.

The MAC (HMAC-SHA256 with a key derived from the app secret, 8 hex digits) keeps people from
forging bounces that would suppress someone else.
"""
from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "bounces"
_ADDRESS = re.compile(rf"^{PREFIX}\+(\d+)-(\d+)-([0-9a-f]{{8}})@", re.I)


def _mac(key: bytes, campaign_id: int, subscriber_id: int) -> str:
    return hmac.new(key, f"verp:{campaign_id}:{subscriber_id}".encode(),
                    hashlib.sha256).hexdigest()[:8]


def encode(key: bytes, domain: str, campaign_id: int, subscriber_id: int) -> str:
    return f"{PREFIX}+{campaign_id}-{subscriber_id}-{_mac(key, campaign_id, subscriber_id)}@{domain}"


def decode(key: bytes, address: str) -> tuple[int, int] | None:
    """(campaign id, subscriber id) of one of our Return-Paths, None for anything else."""
    match = _ADDRESS.match(address.strip().strip("<>"))
    if match is None:
        return None
    campaign_id, subscriber_id = int(match.group(1)), int(match.group(2))
    if not hmac.compare_digest(match.group(3).lower(), _mac(key, campaign_id, subscriber_id)):
        return None
    return campaign_id, subscriber_id
