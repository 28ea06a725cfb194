"""The campaign sender: claim a batch, compose, hand to SMTP, record — one row at a time.

`Sender` is one sender: one SMTP session, one lease holder name. Run alone (one process) it
records each reply in its own transaction; forked by sending/fanout.py it journals each reply
before the next message's DATA ends on that session (an append to the sender's own file,
campaigns/journal.py; see campaigns/ledger.py for why that bounds in-doubt rows to one per
session) and the parent commits the records of all senders in groups. On a PIPELINING relay
the final dot travels with the next message's envelope (delivery/stream.py): one round trip
per message.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from altkraft_onprem import db
from altkraft_onprem.campaigns import breakers, ledger, localtime, recording, runs, transactional
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.delivery import providers, smtp
from altkraft_onprem.delivery.errors import DeliveryError
from altkraft_onprem.delivery.slots import RelaySlots
from altkraft_onprem.delivery.stream import Stream
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages.data import DataFetchError
from altkraft_onprem.messages.render import TemplateProblem

from .compose import Composer, Outgoing, composers

log = logging.getLogger("altkraft.delivery")
# How often a sender waiting for a relay connection held elsewhere in the installation asks.
SLOT_WAIT_SECONDS = 0.5


@dataclass
class Outcome:
    """What a sender did; `paused` carries the reason when every relay was down."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    in_doubt: int = 0               # the relay dropped the connection instead of answering a dot
    held: int = 0                   # for a provider whose breaker is open (campaigns/breakers.py)
    paused: str | None = None
    lost_lease: bool = False
    sent_bytes: int = 0             # the messages accepted, as handed to the relay
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("claim", "render", "mime", "dkim", "smtp", "ledger"), 0.0))


class LeaseLost(Exception):
    """Another sender took over our rows: stop without ending the message in flight."""


class DomainLimiter:
    """Per-destination-domain token buckets (this process's share of the configured rate)."""

    def __init__(self, limits: list[dict], share: int):
        self.rates = {item["domain"].lower(): item["per_second"] / max(share, 1) for item in limits}
        self.next_free: dict[str, float] = {}

    def wait(self, email: str) -> None:
        domain = email.rpartition("@")[2].lower()
        rate = self.rates.get(domain)
        if rate is None:
            return
        now = time.monotonic()
        slot = max(now, self.next_free.get(domain, now))
        self.next_free[domain] = slot + 1.0 / rate
        if slot > now:
            time.sleep(slot - now)


class DirectRecorder:
    """Records each row in its own transaction (one sender in this process)."""

    def __init__(self, engine):
        self.engine = engine

    def record(self, row_id: int, owner: str, state: str, values: dict) -> bool:
        with db.write(self.engine) as conn:
            return recording.record(conn, row_id, owner, state, **values)

    def check(self) -> bool:
        return True

    def settle(self) -> bool:
        return True

    def finish(self, outcome: Outcome) -> None:
        pass


class Sender:
    """One sender: one SMTP session, one lease holder name."""

    def __init__(self, settings, engine, campaign_id: int, share: int = 1, recorder=None,
                 composers: dict[int, Composer] | None = None, owner: str | None = None):
        self.settings = settings
        self.engine = engine
        self.campaign_id = campaign_id
        self.owner = owner or ledger.owner_name()
        self.pool = smtp.pool_for(settings)
        # The relays' connections of the whole installation: one is this sender's while it
        # has a session (released when it ends, or freed when this process is gone).
        self.slots = RelaySlots(engine, self.owner, settings["delivery.lease_seconds"])
        self.session: smtp.Session | None = None
        self.limiter = DomainLimiter(settings["delivery.domain_limits"], share)
        # Per split-test variant (0: no test); built by the parent before a fork, else on
        # the first batch.
        self.composers: dict[int, Composer] = composers or {}
        self.composer: Composer | None = self.composers[min(self.composers)] if composers else None
        self.outcome = Outcome()
        self.recorder = recorder or DirectRecorder(engine)
        self.stream: Stream | None = None                 # on a PIPELINING session
        self.stopped: dict[str, str] = {}                 # providers whose breaker is open
        self.local: dict | None = None                    # a local-time campaign ({}: not one)

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> Outcome:
        batch_size = self.settings["delivery.batch_size"]
        lease = self.settings["delivery.lease_seconds"]
        clean, first_batch = False, True
        try:
            while self.outcome.paused is None and not self.outcome.lost_lease:
                if not first_batch:
                    # Nothing of the previous batch open on the session (so `recover` can
                    # tell which row was at the relay: the first of the lease), and all its
                    # records committed (a row never has two records in one journal).
                    self._flush()
                    if self.outcome.paused is not None:
                        break
                    if self.outcome.lost_lease or not self.recorder.settle():
                        self.outcome.lost_lease = True
                        break
                started = time.perf_counter()
                with db.write(self.engine) as conn:
                    if campaigns.state(conn, self.campaign_id) != "running":
                        break
                    # A small first batch: the first message goes out sooner.
                    size = min(batch_size, 20) if first_batch else batch_size
                    first_batch = False
                    rows = ledger.claim(conn, self.campaign_id, self.owner, size, lease,
                                        skip_zones=self._quiet_zones(conn))
                    self.stopped = breakers.open_ones(conn)
                    self._alive(conn, lease)
                if not rows:
                    break
                with db.read(self.engine) as conn:
                    if self.composer is None:
                        try:
                            self.composers = composers(conn, self.settings, self.campaign_id)
                            self.composer = self.composers[min(self.composers)]
                        except (DeliveryError, TemplateProblem, ServiceError) as exc:
                            self.outcome.paused = f"the message cannot be built: {exc}"
                            break
                    # A transactional carrier's rows are each their own recipient (and
                    # data): keyed by row, not by person.
                    per_row = getattr(self.composer, "per_row", False)
                    if per_row:
                        people, sendable = transactional.row_recipients(
                            conn, self.campaign_id, [rid for rid, _ in rows])
                        through: dict[int, int] = {}
                    else:
                        people, sendable = campaigns.recipients(conn, self.campaign_id,
                                                                [sid for _, sid in rows])
                        through = campaigns.recipient_lists(conn, self.campaign_id,
                                                            [sid for _, sid in rows])
                    try:
                        for composer in self.composers.values():
                            composer.prepare_batch(people)
                    except DataFetchError as exc:
                        self.outcome.paused = f"external data could not be loaded: {exc}"
                        break
                    variant_of = (ledger.row_variants(conn, [rid for rid, _ in rows])
                                  if len(self.composers) > 1 else None)
                self.outcome.stages["claim"] += time.perf_counter() - started
                lease_until = time.monotonic() + lease - 2 * smtp.TIMEOUT
                for row_id, subscriber_id in rows:
                    if time.monotonic() > lease_until:
                        if not self.recorder.settle():      # the lease held until now
                            self.outcome.lost_lease = True
                            break
                        with db.write(self.engine) as conn:
                            ledger.extend(conn, self.owner, lease)
                            self._alive(conn, lease)
                        lease_until = time.monotonic() + lease - 2 * smtp.TIMEOUT
                    if variant_of is not None:     # a split test: this row's variant's message
                        self.composer = self.composers[variant_of[row_id]]
                    key = row_id if per_row else subscriber_id
                    if not self._one(row_id, subscriber_id, people.get(key), key in sendable,
                                     through.get(subscriber_id)):
                        break
            clean = True
        except BaseException:
            clean = False
            raise
        finally:
            if clean:
                self._flush()
            elif self.stream is not None:
                self.stream.abandon()
            # Unsent rows go back to the queue only when every reply is known to be in the
            # ledger; otherwise `ledger.recover` sorts them out (after the journal's replay).
            if clean and self.recorder.settle():
                with db.write(self.engine) as conn:
                    ledger.release(conn, self.owner)
            if clean:
                self.recorder.finish(self.outcome)
            if self.session is not None:
                self.pool.checkin(self.session, self.slots)
                self.session = None
        return self.outcome

    def _quiet_zones(self, conn) -> list[int] | None:
        """A local-time campaign's zones in their quiet hours now (its zones are fixed once
        its ledger is built, before any sender runs)."""
        if self.local is None:
            campaign = campaigns.get_campaign(conn, self.campaign_id)
            self.local = campaign if campaign["send_at_local"] and campaign["local_zones"] else {}
        return localtime.quiet_zones(self.local, utcnow()) if self.local else None

    def _alive(self, conn, lease: float) -> None:
        """This sender's relay slot and its run's lease start over (see campaigns/runs.py)."""
        self.slots.extend(conn)
        runs.extend(conn, self.campaign_id, lease)

    def _record(self, row_id: int, state: str, **values) -> bool:
        started = time.perf_counter()
        ok = self.recorder.record(row_id, self.owner, state, values)
        self.outcome.stages["ledger"] += time.perf_counter() - started
        if not ok:
            self.outcome.lost_lease = True
        return ok

    def _one(self, row_id: int, subscriber_id: int, person: dict | None, sendable: bool,
             list_id: int | None) -> bool:
        """Handles one row; False stops the batch (paused, lease lost). `list_id`: the list
        the person gets it through (None: the campaign's first)."""
        if person is None or not sendable:
            self.outcome.skipped += 1
            return self._record(row_id, "skipped", reply="not sendable any more (unsubscribed, "
                                "suppressed, deleted or no longer confirmed)")
        if self.stopped:
            provider = providers.provider(person["email"])
            if provider in self.stopped:
                return self._hold(row_id, provider)
        try:
            session = self._session()
            eight_bit = session.offers_8bitmime()
        except DeliveryError as exc:
            return self._failed(row_id, exc)
        try:
            outgoing = self.composer.compose(person, eight_bit=eight_bit, list_id=list_id)
        except (TemplateProblem, DeliveryError) as exc:
            self.outcome.failed += 1
            return self._record(row_id, "failed", reply=f"message could not be built: {exc}")
        stages = self.outcome.stages
        stages["render"] += outgoing.times[0]
        stages["mime"] += outgoing.times[1]
        stages["dkim"] += outgoing.times[2]
        self.limiter.wait(outgoing.rcpt)
        if session.conn is not None and session.conn.has_extn("pipelining"):
            return self._stream_one(session, row_id, outgoing)
        started, waited = time.perf_counter(), stages["ledger"]
        try:
            reply = session.send(outgoing.mail_from, outgoing.rcpt, outgoing.data,
                                 eight_bit=outgoing.eight_bit, before_end=self._previous_recorded)
        except LeaseLost:
            self.outcome.lost_lease = True
            return False
        except DeliveryError as exc:
            stages["smtp"] += time.perf_counter() - started - (stages["ledger"] - waited)
            return self._failed(row_id, exc)
        stages["smtp"] += time.perf_counter() - started - (stages["ledger"] - waited)
        self.outcome.sent += 1
        self.outcome.sent_bytes += len(outgoing.data)
        return self._record(row_id, "sent", reply=str(reply), message_id=outgoing.message_id)

    def _stream_one(self, session: smtp.Session, row_id: int, outgoing: Outgoing) -> bool:
        """Hands the message to the session's stream: its envelope goes out now, its content
        and dot with the next message's envelope (or at `_flush`); results arrive in
        `_settle` as the relay's replies are read."""
        if self.stream is None or self.stream.session is not session:
            self.stream = Stream(session, self._settle, self._previous_recorded)
        stages = self.outcome.stages
        started, waited = time.perf_counter(), stages["ledger"]
        try:
            self.stream.send((row_id, outgoing), outgoing.mail_from, outgoing.rcpt,
                             outgoing.data, outgoing.eight_bit)
        except LeaseLost:
            self.outcome.lost_lease = True
        stages["smtp"] += time.perf_counter() - started - (stages["ledger"] - waited)
        return self.outcome.paused is None and not self.outcome.lost_lease

    def _settle(self, tag: tuple[int, Outgoing], result) -> None:
        """Records a streamed message's result (a Reply or a DeliveryError)."""
        row_id, outgoing = tag
        if isinstance(result, DeliveryError):
            self._failed(row_id, result)
            return
        self.outcome.sent += 1
        self.outcome.sent_bytes += len(outgoing.data)
        self._record(row_id, "sent", reply=str(result), message_id=outgoing.message_id)

    def _flush(self) -> None:
        """Ends the message still open on the stream (never after the lease was lost)."""
        if self.stream is None or not self.stream.busy:
            return
        if self.outcome.lost_lease:
            self.stream.abandon()
            return
        started = time.perf_counter()
        try:
            self.stream.finish()
        except LeaseLost:
            self.outcome.lost_lease = True
        self.outcome.stages["smtp"] += time.perf_counter() - started

    def _previous_recorded(self) -> None:
        """Runs before a message's DATA ends. The previous reply must be safe by then (so a
        crash leaves at most one message per session in doubt): `_record` journaled it
        already. Stops the sender if an acknowledgement said the lease was lost."""
        if not self.recorder.check():
            raise LeaseLost()

    def _session(self) -> smtp.Session:
        if self.session is not None and self.session.conn is None:
            # The relay closed our session (421, drop): take another, maybe on another relay.
            self.pool.checkin(self.session, self.slots)
            self.session = None
        if self.session is None:
            self.session = self._checkout()
        return self.session

    def _checkout(self) -> smtp.Session:
        """A session. While the relays' connections are all in use by the installation's other
        senders it waits for one, keeping its rows' and its run's leases alive; DeliveryError
        (busy) if the campaign stops running meanwhile, (relays_down) if no relay answers."""
        lease = self.settings["delivery.lease_seconds"]
        while True:
            try:
                return self.pool.checkout(slots=self.slots)
            except DeliveryError as exc:
                if not exc.busy:
                    raise
                waiting = exc
            with db.write(self.engine) as conn:
                if campaigns.state(conn, self.campaign_id) != "running":
                    raise DeliveryError(f"campaign no longer running ({waiting.message})",
                                        temporary=True, busy=True)
                ledger.extend(conn, self.owner, lease)
                runs.extend(conn, self.campaign_id, lease)
            time.sleep(SLOT_WAIT_SECONDS)

    def _failed(self, row_id: int, exc: DeliveryError) -> bool:
        if exc.busy:                    # no connection for now: this batch ends, the row waits
            self._retry(row_id, exc, count=False)
            return False
        if exc.relays_down:
            if self.session is not None and self.session.conn is None:
                self.pool.checkin(self.session, self.slots)
                self.session = None
            try:
                self._session()
            except DeliveryError as down:
                if down.busy:
                    self._retry(row_id, down, count=False)
                else:
                    self.outcome.paused = down.message
                return False
            return self._retry(row_id, exc, count=False)
        if not exc.temporary:
            self.outcome.failed += 1
            return self._record(row_id, "failed", reply=exc.message)
        if exc.in_doubt and not self.settings["delivery.retry_lost_replies"]:
            # The relay may have kept it: at most once, as when a sender dies mid-message.
            self.outcome.in_doubt += 1
            return self._record(row_id, "in_doubt", reply=f"{exc.message}; it may have been "
                                "delivered, so it is not sent again (delivery.retry_lost_replies)")
        return self._retry(row_id, exc)

    def _hold(self, row_id: int, provider: str) -> bool:
        """Sending to this provider is paused: the row waits in the queue, not sent, its
        attempt not counted; the breaker's close makes it due at once."""
        self.outcome.held += 1
        return self._record(row_id, "queued", reply=breakers.held_reply(provider, self.stopped[provider]),
                            counted=False, retry_at=utcnow() + breakers.RECHECK)

    def _retry(self, row_id: int, exc: DeliveryError, count: bool = True) -> bool:
        now = utcnow()
        with db.read(self.engine) as conn:
            first, attempts = ledger.attempts(conn, row_id)
        attempts += 1 if count else 0
        max_age = timedelta(hours=self.settings["delivery.retry_max_hours"])
        if count and now - (first or now) >= max_age:
            self.outcome.failed += 1
            return self._record(row_id, "failed", reply=f"gave up after {attempts} attempts "
                                f"over {max_age}: {exc.message}")
        delay = self.settings["delivery.retry_seconds"] * (2 ** max(attempts - 1, 0)) if count else 0
        self.outcome.retried += 1
        return self._record(row_id, "queued", reply=f"will retry: {exc.message}", counted=count,
                            retry_at=now + timedelta(seconds=min(delay, 6 * 3600)))
