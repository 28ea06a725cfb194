"""What a node executor sees: a Batch (one node of one published version, many enrolled
people, one transaction) and, for executors that act person by person, a Step (one of them).

An executor returns one Outcome per enrollment, in the batch's order: the branch to leave by,
or a time to wait until (the runner stores it and comes back then), or the end.
"""
from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, func, select

from altkraft_onprem import db
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience import service as audience
from altkraft_onprem.audience.models import subscribers

from . import timing


@dataclass
class Outcome:
    branch: str | None = None
    wait_until: datetime | None = None      # come back then (the node is not done)
    wake_at: datetime | None = None         # look again before wait_until (a condition)
    jump: str | None = None                 # goto: the next node, instead of an edge
    end: str | None = None                  # exit: the reason
    detail: dict = field(default_factory=dict)


@dataclass
class Batch:
    """One node for many enrollments (same version, same node), inside one transaction."""
    conn: Connection
    settings: object
    version: dict                           # versions.version(): definition, nodes, edges, campaigns
    node: dict
    now: datetime
    enrollments: list[dict]
    wake: Callable[[], None] | None = None
    answers: dict = field(default_factory=dict)      # webhook node: enrollment id -> Answer
    _people: dict[int, dict] | None = None
    _zones: dict[int, str | None] | None = None
    _passed: dict[datetime, dict] | None = None

    @property
    def config(self) -> dict:
        return self.node["config"]

    @property
    def definition(self) -> dict:
        return self.version["definition"]

    @property
    def actor(self):
        return system_actor(f"workflow {self.enrollments[0]['workflow_id']}")

    @property
    def subscriber_ids(self) -> list[int]:
        return [e["subscriber_id"] for e in self.enrollments]

    def people(self) -> dict[int, dict]:
        """Render contexts (what a template sees as `subscriber`), read once per batch."""
        if self._people is None:
            self._people = audience.render_context(self.conn, self.subscriber_ids)
        return self._people

    def zones(self) -> dict[int, str | None]:
        """Each person's own time zone (None: the workflow's), read once per batch."""
        if self._zones is None:
            if self._people is not None:
                self._zones = {sid: p.get("timezone") for sid, p in self._people.items()}
            else:
                self._zones = {}
                for chunk in db.chunked(self.subscriber_ids, 2000):
                    self._zones.update(self.conn.execute(select(
                        subscribers.c.id, subscribers.c.timezone).where(
                        db.among(self.conn, subscribers.c.id, chunk))).all())
        return self._zones

    def steps(self) -> list[Step]:
        return [Step(self, enrollment) for enrollment in self.enrollments]

    def matching(self, conditions: dict) -> set[int]:
        """The people of this batch who match segment conditions (one query)."""
        where = segment_service.matching(self.conn, conditions)
        found: set[int] = set()
        for chunk in db.chunked(self.subscriber_ids, 2000):
            found.update(self.conn.execute(select(subscribers.c.id).where(
                db.lookup(self.conn, subscribers.c.id, chunk, where))).scalars())
        return found

    def passed(self, moment: datetime) -> dict:
        """The step detail of a wait that is over (shared by everyone of the batch whose
        wait ended at that moment)."""
        if self._passed is None:
            self._passed = {}
        return self._passed.setdefault(moment, {"until": moment.isoformat()})

    def counts(self, where_for: Callable, key_column, ids: list[int]) -> dict[int, int]:
        return count_by(self.conn, where_for, key_column, ids)


def count_by(conn: Connection, where_for: Callable, key_column, ids: list[int]) -> dict[int, int]:
    """{id: count} of the rows matching `where_for(chunk of ids)`, grouped by `key_column`
    (an id without rows is absent)."""
    found: dict[int, int] = {}
    for chunk in db.chunked(ids, 2000):
        found.update(conn.execute(select(key_column, func.count()).where(
            *where_for(chunk)).group_by(key_column)).all())
    return found


@dataclass
class Step:
    """One enrollment of a batch, for executors that act person by person."""
    batch: Batch
    enrollment: dict

    @property
    def conn(self) -> Connection:
        return self.batch.conn

    @property
    def settings(self):
        return self.batch.settings

    @property
    def node(self) -> dict:
        return self.batch.node

    @property
    def now(self) -> datetime:
        return self.batch.now

    @property
    def definition(self) -> dict:
        return self.batch.definition

    @property
    def wake(self):
        return self.batch.wake

    @property
    def config(self) -> dict:
        return self.node["config"]

    @property
    def person(self) -> dict | None:
        return self.batch.people().get(self.subscriber_id)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return timing.zone(self.batch.zones().get(self.subscriber_id),
                           self.definition.get("timezone", "UTC"))

    @property
    def subscriber_id(self) -> int:
        return self.enrollment["subscriber_id"]

    @property
    def actor(self):
        return self.batch.actor

    def waited(self) -> bool:
        """The wait this node asked for is over (or compressed: a test enrollment)."""
        until = self.enrollment["waiting_until"]
        return until is not None and self.now >= until

    def wait(self, target: datetime, **detail) -> Outcome:
        """Wait until `target` (a test enrollment goes on at once)."""
        if self.enrollment["test"] or target <= self.now or self.waited():
            if not detail and not self.enrollment["test"]:      # one object per moment: one JSON
                return Outcome(detail=self.batch.passed(target))
            return Outcome(detail={**detail, "until": target.isoformat(),
                                   **({"compressed": True} if self.enrollment["test"] else {})})
        return Outcome(wait_until=target, detail=detail)


Executor = Callable[[Batch], list[Outcome]]


def each(executor: Callable[[Step], Outcome]) -> Executor:
    """A batch executor from one that acts on one person (in the batch's transaction)."""
    def run(batch: Batch) -> list[Outcome]:
        return [executor(step) for step in batch.steps()]
    run.__name__ = executor.__name__
    return run
