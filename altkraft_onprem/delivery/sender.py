"""The campaign sender: claim a batch, compose, hand to SMTP, record — one row at a time.

A run forks N sender processes (one SMTP session each), so rendering and signing use every
core while other senders wait on the relay; all of them share the ledger, as senders on
other machines do (Postgres: SKIP LOCKED claims). Each reply is journaled before the next
message's DATA ends on that session (an append to the sender's own file, delivery/journal.py;
see campaigns/ledger.py for why that bounds in-doubt rows to one per session); the parent
commits the records of all senders in groups. On a PIPELINING relay the final dot travels
with the next message's envelope (delivery/stream.py): one round trip per message.
"""
from __future__ import annotations

import gc
import logging
import os
import pickle
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta

from altkraft_onprem import db
from altkraft_onprem.campaigns import ledger
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.forking import die_with_parent
from altkraft_onprem.messages.data import DataFetchError
from altkraft_onprem.messages.render import TemplateProblem

from . import journal, smtp
from .compose import Composer, Outgoing
from .errors import DeliveryError
from .journal import Journal
from .stream import Stream

log = logging.getLogger("altkraft.delivery")


@dataclass
class Outcome:
    """What a sender did; `paused` carries the reason when every relay was down."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    paused: str | None = None
    lost_lease: bool = False
    sent_bytes: int = 0             # the messages accepted, as handed to the relay
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("claim", "render", "mime", "dkim", "smtp", "ledger"), 0.0))


# While records keep coming, the parent sleeps this long between group commits: the
# senders journal their records and go on, so nobody waits for a commit, and a parent that
# is not woken per record costs the senders no preemption per message.
GROUP_WAIT = 0.005


# Senders are bulk CPU work: the web UI, tracking, the parent's commits and a local relay
# run first when they have something to do (the senders wait on the last two).
SENDER_NICENESS = 10


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
            return ledger.record(conn, row_id, owner, state, **values)

    def check(self) -> bool:
        return True

    def settle(self) -> bool:
        return True

    def finish(self, outcome: Outcome) -> None:
        pass


class PipeRecorder:
    """Journals each record (from then on it is safe, see delivery/journal.py) and hands it
    to the parent, which commits those of all senders in groups and acknowledges each."""

    def __init__(self, record_fd: int, ack_fd: int, journal: Journal):
        self.record_fd, self.ack_fd = record_fd, ack_fd
        os.set_blocking(ack_fd, False)
        self.journal = journal
        self.outstanding = 0
        self.ok = True                  # no acknowledgement said the lease was lost
        self.parent_gone = False

    def record(self, row_id: int, owner: str, state: str, values: dict) -> bool:
        self.journal.append(row_id, state, values)
        _send(self.record_fd, ("record", row_id, owner, state, values))
        self.outstanding += 1
        return self.ok

    def check(self) -> bool:
        """Takes in the acknowledgements that arrived; waits only while more than
        `ledger.UNCOMMITTED_WINDOW` records are uncommitted (what `recover` assumes of a
        sender whose journal is lost with its host)."""
        if self.outstanding:
            self._read_acks()
        self._wait_for_acks(ledger.UNCOMMITTED_WINDOW)
        return self.ok

    def settle(self) -> bool:
        """Waits until the parent committed every record; the journal then starts over."""
        self._wait_for_acks(0)
        if not self.parent_gone:
            self.journal.reset()
        return self.ok

    def _wait_for_acks(self, outstanding: int) -> None:
        """Blocks until at most `outstanding` records await their acknowledgement."""
        while self.outstanding > outstanding:
            select.select([self.ack_fd], [], [])
            self._read_acks()

    def _read_acks(self) -> None:
        try:
            answer = os.read(self.ack_fd, self.outstanding)
        except BlockingIOError:
            return
        if not answer:                  # the parent is gone: the journal keeps the records
            self.ok = False
            self.parent_gone = True
            self.outstanding = 0
            return
        self.outstanding -= len(answer)
        self.ok = self.ok and b"0" not in answer

    def finish(self, outcome: Outcome) -> None:
        self.settle()
        _send(self.record_fd, ("done", outcome))
        if not self.parent_gone:
            self.journal.remove()


def _send(fd: int, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    data = len(data).to_bytes(4, "big") + data
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Sender:
    """One sender: one SMTP session, one lease holder name."""

    def __init__(self, settings, engine, campaign_id: int, share: int = 1, recorder=None,
                 composers: dict[int, Composer] | None = None, owner: str | None = None):
        self.settings = settings
        self.engine = engine
        self.campaign_id = campaign_id
        self.owner = owner or ledger.owner_name()
        self.pool = smtp.pool_for(settings)
        self.session: smtp.Session | None = None
        self.limiter = DomainLimiter(settings["delivery.domain_limits"], share)
        # Per split-test variant (0: no test); built by the parent before a fork, else on
        # the first batch.
        self.composers: dict[int, Composer] = composers or {}
        self.composer: Composer | None = self.composers[min(self.composers)] if composers else None
        self.outcome = Outcome()
        self.recorder = recorder or DirectRecorder(engine)
        self.stream: Stream | None = None                 # on a PIPELINING session

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> Outcome:
        from altkraft_onprem.campaigns import service as campaigns

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
                    rows = ledger.claim(conn, self.campaign_id, self.owner, size, lease)
                if not rows:
                    break
                with db.read(self.engine) as conn:
                    if self.composer is None:
                        try:
                            self.composers = campaigns.composers(conn, self.settings, self.campaign_id)
                            self.composer = self.composers[min(self.composers)]
                        except (DeliveryError, TemplateProblem, ServiceError) as exc:
                            self.outcome.paused = f"the message cannot be built: {exc}"
                            break
                    people, sendable = campaigns.recipients(conn, self.campaign_id,
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
                        lease_until = time.monotonic() + lease - 2 * smtp.TIMEOUT
                    if variant_of is not None:     # a split test: this row's variant's message
                        self.composer = self.composers[variant_of[row_id]]
                    if not self._one(row_id, subscriber_id, people.get(subscriber_id),
                                     subscriber_id in sendable):
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
                if self.session.conn is not None:
                    self.pool.checkin(self.session)
                else:
                    self.session.relay.slots.release()
                self.session = None
        return self.outcome

    def _record(self, row_id: int, state: str, **values) -> bool:
        started = time.perf_counter()
        ok = self.recorder.record(row_id, self.owner, state, values)
        self.outcome.stages["ledger"] += time.perf_counter() - started
        if not ok:
            self.outcome.lost_lease = True
        return ok

    def _one(self, row_id: int, subscriber_id: int, person: dict | None, sendable: bool) -> bool:
        """Handles one row; False stops the batch (paused, lease lost)."""
        if person is None or not sendable:
            self.outcome.skipped += 1
            return self._record(row_id, "skipped", reply="not sendable any more (unsubscribed, "
                                "suppressed, deleted or no longer confirmed)")
        try:
            session = self._session()
            eight_bit = session.offers_8bitmime()
        except DeliveryError as exc:
            return self._failed(row_id, exc)
        try:
            outgoing = self.composer.compose(person, eight_bit=eight_bit)
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
            self.session.relay.slots.release()
            self.session = None
        if self.session is None:
            self.session = self.pool.checkout()
        return self.session

    def _failed(self, row_id: int, exc: DeliveryError) -> bool:
        if exc.relays_down:
            if self.session is not None and self.session.conn is None:
                self.session.relay.slots.release()
                self.session = None
            try:
                self._session()
            except DeliveryError as down:
                self.outcome.paused = down.message
                return False
            return self._retry(row_id, exc, count=False)
        if not exc.temporary:
            self.outcome.failed += 1
            return self._record(row_id, "failed", reply=exc.message)
        return self._retry(row_id, exc)

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


# --- a run: N sender processes ---------------------------------------------------------------

def sender_count(settings) -> int:
    configured = settings["delivery.processes"]
    if configured:
        return configured
    return max(1, sum(r["max_connections"] for r in settings["smtp.relays"]))


def run(settings, engine, campaign_id: int, processes: int | None = None) -> list[Outcome]:
    """Sends what is due of a running campaign with N senders; returns their outcomes."""
    processes = processes or sender_count(settings)
    if processes <= 1:
        return [Sender(settings, engine, campaign_id).run()]
    # Build the messages (compile, DKIM keys, external data) once here: the forked senders
    # inherit them instead of each doing it again before their first message.
    from altkraft_onprem.campaigns import service as campaigns

    try:
        with db.read(engine) as conn:
            built = campaigns.composers(conn, settings, campaign_id)
    except (DeliveryError, TemplateProblem, ServiceError) as exc:
        return [Outcome(paused=f"the message cannot be built: {exc}")]
    children = []
    # Frozen, what the senders inherit is left alone by their garbage collector: no scans of
    # it, and no copied pages from relinking its objects.
    gc.freeze()
    try:
        for _ in range(processes):
            children.append(_fork_sender(settings, engine, campaign_id, processes, built, children))
    finally:
        gc.unfreeze()                   # the parent's own heap: collected as before
    try:
        return _serve(engine, children)
    finally:
        for pid, record_r, ack_w in children:
            for fd in (record_r, ack_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            os.waitpid(pid, 0)


def _fork_sender(settings, engine, campaign_id: int, processes: int, built, children):
    """Starts one sender process: (pid, its record pipe's read end, its ack pipe's write end)."""
    record_r, record_w = os.pipe()
    ack_r, ack_w = os.pipe()
    pid = os.fork()
    if pid == 0:                                      # the sender process
        code = 0
        try:
            for fd in (record_r, ack_w, *[fd for c in children for fd in c[1:]]):
                os.close(fd)
            die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
            os.nice(SENDER_NICENESS)
            engine.dispose(close=False)
            owner = ledger.owner_name()
            recorder = PipeRecorder(record_w, ack_r, Journal(journal.directory(settings), owner))
            Sender(settings, engine, campaign_id, share=processes, recorder=recorder,
                   composers=built, owner=owner).run()
        except BaseException:  # noqa: BLE001 - report, then leave without running atexit
            log.exception("sender for campaign %s failed", campaign_id)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(record_w)
    os.close(ack_r)
    return pid, record_r, ack_w


def _serve(engine, children) -> list[Outcome]:
    """The parent's part: commit the senders' records in groups, answer each with an ack."""
    ack_for = {record_r: ack_w for _, record_r, ack_w in children}
    buffers = {fd: bytearray() for fd in ack_for}
    open_fds = set(ack_for)
    outcomes: list[Outcome] = []
    # One connection for the whole run: a pool checkout per group costs more than its UPDATE.
    with engine.execution_options(sqlite_begin="IMMEDIATE").connect() as writer:
        postgres = writer.dialect.name == "postgresql"
        if postgres:
            # Survives our own crash (the fault that matters here); like SQLite's
            # synchronous=NORMAL, only a crash of the database host may lose the last
            # fraction of a second. Without it every group waits for a WAL flush.
            writer.exec_driver_sql("SET synchronous_commit = off")
            writer.commit()
        try:
            _serve_loop(writer, ack_for, buffers, open_fds, outcomes)
        except BaseException:
            if postgres:
                writer.invalidate()         # never hand the session setting to the pool
            raise
        if postgres:
            writer.rollback()
            writer.exec_driver_sql("RESET synchronous_commit")
            writer.commit()
    return outcomes


def _serve_loop(writer, ack_for, buffers, open_fds, outcomes) -> None:
    busy = False
    while open_fds:
        if busy:
            time.sleep(GROUP_WAIT)
        # After a quiet spell the first record is committed at once (start, settle).
        readable, _, _ = select.select(list(open_fds), [], [], 0 if busy else 1.0)
        batch: list = []
        for fd in readable:
            _read_records(fd, buffers, open_fds, outcomes, batch)
        busy = bool(batch)
        if batch:
            results = _commit_group(writer, batch)
            answers: dict[int, bytearray] = {}
            for fd, ok in results:
                answers.setdefault(fd, bytearray()).append(ord("1") if ok else ord("0"))
            for fd, answer in answers.items():
                try:
                    os.write(ack_for[fd], bytes(answer))
                except OSError:
                    pass


def _read_records(fd, buffers, open_fds, outcomes, batch) -> None:
    """Takes in what a sender wrote: its records into `batch`, its outcome when done."""
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        open_fds.discard(fd)
        return
    buffer = buffers[fd]
    buffer += chunk
    while len(buffer) >= 4:
        size = int.from_bytes(buffer[:4], "big")
        if len(buffer) < 4 + size:
            break
        message = pickle.loads(bytes(buffer[4:4 + size]))
        del buffer[:4 + size]
        if message[0] == "done":
            outcomes.append(message[1])
        else:
            batch.append((fd, message))


def _commit_group(conn, batch) -> list[tuple[int, bool]]:
    """Records of several senders in one transaction: [(sender fd, lease still held)]."""
    results = []
    sent = [(fd, m) for fd, m in batch if m[3] == "sent"]
    items = [(m[1], m[2], m[4].get("reply"), m[4].get("message_id")) for _, m in sent]
    if len(sent) == len(batch):                 # the common case, on the driver's connection
        return [(fd, ok) for (fd, _), ok in zip(sent, ledger.commit_sent(conn, items), strict=True)]
    with conn.begin():
        oks = ledger.record_sent(conn, items)
        results.extend((fd, ok) for (fd, _), ok in zip(sent, oks, strict=True))
        results.extend((fd, ledger.record(conn, row_id, owner, state, **values))
                       for fd, (_, row_id, owner, state, values) in batch if state != "sent")
    return results
