"""The check at a campaign's start: its pinned message (each split-test variant's) rendered for a
sample of its real recipients by the send's own rule, so that a variable without a value
refuses the start — naming the variable and a recipient — instead of failing row after row.
"""
from __future__ import annotations

import random
from typing import Any

from sqlalchemy import Connection, func, select

from altkraft_onprem import extensions
from altkraft_onprem.audience import service as audience
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages.preview import first_unrenderable

from . import splittest
from .models import deliveries, lists_label, variant_letter

# Enough to meet a value most recipients lack; few enough that a start stays quick when the
# message fetches external data per recipient.
SAMPLE_SIZE = 25


def sample_recipients(conn: Connection, campaign_id: int, size: int = SAMPLE_SIZE) -> list[int]:
    """Subscriber ids of up to `size` ledger rows spread at random over the whole audience
    (one index lookup each, not a sort of the ledger)."""
    d = deliveries.c
    low, high = conn.execute(select(func.min(d.id), func.max(d.id))
                             .where(d.campaign_id == campaign_id)).one()
    if low is None:
        return []
    query = select(d.subscriber_id).where(d.campaign_id == campaign_id)
    if high - low < size:
        return list(conn.execute(query).scalars())
    picks = sorted(random.sample(range(low, high + 1), size))
    found = [conn.execute(query.where(d.id >= pick).order_by(d.id).limit(1)).scalar() for pick in picks]
    return list(dict.fromkeys(sid for sid in found if sid is not None))


def refuse_unrenderable(conn: Connection, settings, campaign: dict[str, Any],
                        list_names: dict[int, str]) -> None:
    """ServiceError naming the variable and the recipient when the campaign's message cannot
    be rendered for one of a sample of its recipients; call it once the ledger is built."""
    people = audience.render_context(conn, sample_recipients(conn, campaign["id"]))
    if not people:
        return
    list_name = lists_label(campaign["list_ids"], list_names)
    for variant, (values, version) in splittest.sending_parts(conn, campaign).items():
        found = first_unrenderable(settings, version, list(people.values()),
                                   list_name=list_name, campaign_name=values["name"])
        if found is not None:
            person, problem = found
            refused = ServiceError("the message cannot be sent as it is: for %(email)s, "
                                   "%(problem)s. Nothing was sent.", "message_id",
                                   email=person["email"], problem=problem)
            if variant:
                raise ServiceError("variant %(letter)s: %(reason)s", "message_id",
                                   letter=variant_letter(variant), reason=refused)
            raise refused


def refuse_blocked(engine, settings, campaign_id: int) -> None:
    """ServiceError naming what the higher domains' start checks found (see
    extensions.CAMPAIGN_START_CHECKS); call it before the start's transaction."""
    reasons = [r for found in extensions.CAMPAIGN_START_CHECKS.collect(engine, settings, campaign_id)
               for r in found]
    if reasons:
        raise ServiceError("the pre-send checks stop this campaign: %(reasons)s. Nothing was sent.",
                           "message_id", reasons="; ".join(reasons))
