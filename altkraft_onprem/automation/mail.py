"""The send-email node: a row in the delivery ledger of the node's campaign, in the step's
transaction. The occurrence (enrollment id x 1000 + visit) makes the ledger's UNIQUE key
hold per time the person reaches the node: a replayed step queues nothing new, and the
sender's journal and in-doubt rules apply unchanged, so one occurrence is sent at most once.
"""
from __future__ import annotations

from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.campaigns import jobs as campaign_jobs
from altkraft_onprem.campaigns import occurrences

from .workflow_models import workflow_versions

VISITS_PER_ENROLLMENT = 1000        # goto's max_visits is at most 100


def occurrence(enrollment_id: int, visit: int) -> int:
    return enrollment_id * VISITS_PER_ENROLLMENT + visit


def send_email_node(step) -> dict:
    campaigns = step.conn.execute(select(workflow_versions.c.campaigns).where(
        workflow_versions.c.id == step.enrollment["version_id"])).scalar_one()
    campaign_id = campaigns[step.node["id"]]
    number = occurrence(step.enrollment["id"], step.enrollment["visit"])
    queued = occurrences.queue(step.conn, campaign_id, step.subscriber_id, number,
                               step.enrollment["event"])
    db.after_commit(step.conn, f"automation.send.{campaign_id}",
                    lambda: campaign_jobs.send_campaign(campaign_id))
    return {"campaign_id": campaign_id, "occurrence": number, "queued": queued}
