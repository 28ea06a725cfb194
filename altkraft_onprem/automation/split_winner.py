"""A split node's automatic winner, by the campaigns' split-test rules (campaigns/splittest.py).

The first `test_size` people through the node go by weight — the test group. `wait` after the
last of them, the branches are compared on the human figures of the first email on each
branch's path (delivered, unique openers and clickers of its node's campaign), and
`splittest.choose` names the winner: the highest rate, then more delivered, then the earlier
branch. Everyone after goes by the winning branch; those who arrive between the test group and
the decision wait at the node until it is made. The count, the decision and the routing are
written in the batch's transaction (the row is locked on Postgres), so the test group is
exactly `test_size` people however many runners there are.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, select, update

from altkraft_onprem import db
from altkraft_onprem.campaigns import occurrences, splittest
from altkraft_onprem.tracking import lookups as tracking_lookups

from . import timing
from .step_context import Batch, Outcome, Step
from .workflow_models import splits

Weighted = Callable[[Step], Outcome]


def _following(edges: dict) -> dict[str, list[str]]:
    following: dict[str, list[str]] = {}
    for (source, _), target in edges.items():
        following.setdefault(source, []).append(target)
    return following


def reachable(edges: dict, start: str | None) -> set[str]:
    """The nodes reachable from `start` along {(from, branch): to} (`start` included)."""
    following, found = _following(edges), set()
    queue = [start] if start is not None else []
    while queue:
        current = queue.pop()
        if current not in found:
            found.add(current)
            queue.extend(following.get(current, []))
    return found


def first_sends(types: dict[str, str], edges: dict, node_id: str,
                branches) -> dict[str, str | None]:
    """Each branch of a split: the first send_email node on its path (None: no email)."""
    following = _following(edges)
    found = {}
    for branch in branches:
        queue, seen, send = [edges.get((node_id, branch))], set(), None
        while queue and send is None:
            current = queue.pop(0)
            if current is None or current in seen:
                continue
            seen.add(current)
            if types[current] == "send_email":
                send = current
            queue.extend(following.get(current, []))
        found[branch] = send
    return found


def branch_campaigns(version: dict, node_id: str) -> dict[str, int | None]:
    """Each branch of the split: the campaign of the first email on its path."""
    sends = first_sends({n: node["type"] for n, node in version["nodes"].items()}, version["edges"],
                        node_id, version["nodes"][node_id]["config"]["variants"])
    return {branch: version["campaigns"][send] if send else None for branch, send in sends.items()}


def route(batch: Batch, weighted: Weighted) -> list[Outcome]:
    config = batch.config["winner"]
    state = _locked(batch.conn, batch.version["id"], batch.node["id"])
    outcomes = []
    for step in batch.steps():
        if step.enrollment["test"]:                 # a test run: by weight, not counted
            outcomes.append(weighted(step))
        elif state["winner"] is not None:
            outcomes.append(Outcome(branch=state["winner"], detail={"winner": True}))
        elif state["tested"] < config["test_size"]:
            outcome = weighted(step)
            outcome.detail["test_group"] = True
            outcomes.append(outcome)
            state["tested"] += 1
            if state["tested"] == config["test_size"]:
                state["decide_at"] = batch.now + timing.duration(config["wait"])
        elif state["decide_at"] <= batch.now:
            state.update(decide(batch.conn, batch.version, batch.node, config["metric"], batch.now))
            outcomes.append(Outcome(branch=state["winner"], detail={"winner": True}))
        else:
            outcomes.append(Outcome(wait_until=state["decide_at"]))
    batch.conn.execute(update(splits).where(
        splits.c.version_id == batch.version["id"], splits.c.node_id == batch.node["id"]).values(
        tested=state["tested"], decide_at=state["decide_at"], winner=state["winner"],
        decided_at=state["decided_at"], results=state["results"]))
    return outcomes


def decide(conn: Connection, version: dict, node: dict, metric: str, now: datetime) -> dict:
    """The winning branch and the figures it was chosen on."""
    branches = list(node["config"]["variants"])
    campaigns = branch_campaigns(version, node["id"])
    ids = [c for c in campaigns.values() if c is not None]
    delivered = occurrences.delivered(conn, ids) if ids else {}
    engaged = tracking_lookups.unique_engaged(conn, ids) if ids else {}
    items = []
    for number, branch in enumerate(branches, start=1):
        campaign_id = campaigns[branch]
        opens, clicks = engaged.get(campaign_id, (0, 0))
        items.append({"variant": number, "branch": branch, "campaign_id": campaign_id,
                      "delivered": delivered.get(campaign_id, 0), "unique_opens": opens,
                      "unique_clicks": clicks})
    winner = branches[splittest.choose(items, metric) - 1]
    return {"winner": winner, "decided_at": now, "results": items}


def _locked(conn: Connection, version_id: int, node_id: str) -> dict:
    conn.execute(db.insert_ignoring_conflicts(conn, splits).values(
        version_id=version_id, node_id=node_id, tested=0))
    query = select(splits).where(splits.c.version_id == version_id, splits.c.node_id == node_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return dict(conn.execute(query).mappings().one())
