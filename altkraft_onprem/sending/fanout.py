"""A campaign run: N sender processes and the pipe their records come back through.

A run forks N senders (sending/sender.py, one SMTP session each), so rendering and signing
use every core while other senders wait on the relay; all of them share the ledger, as
senders on other machines do (Postgres: SKIP LOCKED claims). Each sender journals every reply
(campaigns/journal.py) and hands it to the parent through a pipe; the parent commits the
records of all senders in groups and acknowledges each, so nobody waits for a commit per
message.
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

from altkraft_onprem import db, events
from altkraft_onprem.campaigns import journal, ledger, recording
from altkraft_onprem.campaigns.journal import Journal
from altkraft_onprem.delivery.errors import DeliveryError
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.forking import die_with_parent
from altkraft_onprem.messages.render import TemplateProblem

from .compose import composers
from .sender import Outcome, Sender

log = logging.getLogger("altkraft.delivery")


# While records keep coming, the parent sleeps this long between group commits: the
# senders journal their records and go on, so nobody waits for a commit, and a parent that
# is not woken per record costs the senders no preemption per message.
GROUP_WAIT = 0.005


# Senders are bulk CPU work: the web UI, tracking, the parent's commits and a local relay
# run first when they have something to do (the senders wait on the last two).
SENDER_NICENESS = 10


class PipeRecorder:
    """Journals each record (from then on it is safe, see campaigns/journal.py) and hands it
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
    try:
        with db.read(engine) as conn:
            built = composers(conn, settings, campaign_id)
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
    # The common case, on the driver's connection — unless delivery webhooks listen (then the
    # outcomes go to the outbox in the same transaction).
    if len(sent) == len(batch) and not events.DELIVERY_OUTCOMES.wanted(None):
        return [(fd, ok) for (fd, _), ok in zip(sent, ledger.commit_sent(conn, items), strict=True)]
    with conn.begin():
        oks = ledger.record_sent(conn, items)
        results.extend((fd, ok) for (fd, _), ok in zip(sent, oks, strict=True))
        ledger.emit_outcomes(conn, [m[1] for (_, m), ok in zip(sent, oks, strict=True) if ok])
        results.extend((fd, recording.record(conn, row_id, owner, state, **values))
                       for fd, (_, row_id, owner, state, values) in batch if state != "sent")
    return results
