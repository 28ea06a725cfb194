"""The send-email node: rows in the delivery ledger of the node's campaign, the whole batch in
one statement, in the step's transaction. The occurrence (enrollment id x 1000 + visit) makes
the ledger's UNIQUE key hold per time a person reaches the node: a replayed step queues
nothing new, and the senders' journal and in-doubt rules apply unchanged, so one occurrence
is sent at most once. After the commit the ordinary campaign send run takes the rows.
"""
from __future__ import annotations

from altkraft_onprem import db
from altkraft_onprem.campaigns import jobs as campaign_jobs
from altkraft_onprem.campaigns import occurrences

from .step_context import Batch, Outcome

VISITS_PER_ENROLLMENT = 1000        # goto's max_visits is at most 100


def occurrence(enrollment_id: int, visit: int) -> int:
    return enrollment_id * VISITS_PER_ENROLLMENT + visit


def send_email(batch: Batch) -> list[Outcome]:
    campaign_id = batch.version["campaigns"][batch.node["id"]]
    numbers = [occurrence(e["id"], e["visit"]) for e in batch.enrollments]
    queued = occurrences.queue_many(batch.conn, campaign_id, [
        (e["subscriber_id"], number, e["event"]) for e, number in zip(batch.enrollments, numbers,
                                                                       strict=True)])
    db.after_commit(batch.conn, f"automation.send.{campaign_id}",
                    lambda: campaign_jobs.send_campaign(campaign_id))
    return [Outcome(detail={"campaign_id": campaign_id, "occurrence": number,
                            "queued": (e["subscriber_id"], number) in queued})
            for e, number in zip(batch.enrollments, numbers, strict=True)]
