"""Who a report is about, in the order of trust: the envelope's VERP address, the VERP address
in the original's Return-Path, the signed unsubscribe token in the original's
List-Unsubscribe, the original's Message-ID in the delivery ledger. All but the last carry a
MAC; the last only names a message we sent. So a provider that redacts the recipient
(Microsoft's JMRP does) is still understood, and nobody can forge a report about an address
we never mailed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, select

from altkraft_onprem.audience import links
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.delivery import verp

_BRACKETED = re.compile(r"<([^<>]{1,2000})>")


@dataclass(frozen=True)
class Attribution:
    subscriber_id: int
    campaign_id: int | None
    how: str            # envelope, return-path, list-unsubscribe, message-id


def from_address(key: bytes, address: str, how: str) -> Attribution | None:
    found = verp.decode(key, address)
    return Attribution(found[1], found[0], how) if found else None


def _from_list_unsubscribe(settings, key: bytes, value: str) -> Attribution | None:
    for target in _BRACKETED.findall(value):
        target = target.strip()
        if target.lower().startswith("mailto:"):
            found = verp.decode(key, target[7:].partition("?")[0], verp.UNSUBSCRIBE_PREFIX)
            if found:
                return Attribution(found[1], found[0], "list-unsubscribe")
        elif "/p/u/" in target:
            token = target.rpartition("/p/u/")[2].partition("?")[0]
            try:
                subscriber_id, _list_id, campaign_id = links.read_unsubscribe(settings, token)
            except links.LinkError:
                continue
            return Attribution(subscriber_id, campaign_id, "list-unsubscribe")
    return None


def message_id_attribution(conn: Connection, value: str) -> Attribution | None:
    """The ledger row whose message had this Message-ID (with or without brackets)."""
    found = _BRACKETED.search(value)
    message_id = f"<{found.group(1).strip()}>" if found else f"<{value.strip()}>"
    if len(message_id) > 200 or message_id == "<>":
        return None
    row = conn.execute(select(deliveries.c.subscriber_id, deliveries.c.campaign_id)
                       .where(deliveries.c.message_id == message_id).limit(1)).first()
    return Attribution(row.subscriber_id, row.campaign_id, "message-id") if row else None


def attribute(conn: Connection, settings, key: bytes, rcpt: str,
              original: dict[str, str]) -> Attribution | None:
    """The subscriber (and campaign) a report received for `rcpt` is about, or None."""
    return (from_address(key, rcpt, "envelope")
            or from_address(key, original.get("return-path", ""), "return-path")
            or _from_list_unsubscribe(settings, key, original.get("list-unsubscribe", ""))
            or (message_id_attribution(conn, original["message-id"]) if original.get("message-id") else None))
