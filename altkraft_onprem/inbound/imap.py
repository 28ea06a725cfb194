"""IMAP reading of existing mailboxes ([[inbound.imap]]): each new message is stored in the
intake (source imap), run through the pipeline, then moved to processed_folder — or, when it
matches nothing sent from here (or cannot be read), to unmatched_folder. Nothing is deleted.

Two ways to notice new mail, one reader at a time per mailbox (a lease in its state):
`altkraft inbound` keeps a `Watcher` per mailbox that waits with IMAP IDLE where the server
offers it (new mail is read within seconds; IDLE is issued again every IDLE_SECONDS, well
inside RFC 2177's 29 minutes) and polls every POLL_SECONDS where it does not (or the mailbox
says idle = false); the minute job `poll_imap` polls every mailbox no watcher holds, so mail
is still read when `altkraft inbound` is not running.

A UID checkpoint per mailbox (with its UIDVALIDITY) is kept in the app state after each move,
so a server without MOVE is never read twice; a crash between storing and moving reads the
message again, which the intake recognises (same message, same id).
"""
from __future__ import annotations

import email.utils
import json
import logging
import ssl
import threading
from datetime import datetime, timedelta
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from altkraft_onprem import db
from altkraft_onprem.access.setup import get_state, put_state
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.holders import lease_free, owner_name

from . import intake, service
from .addresses import Recogniser
from .models import inbound_messages
from .parse import read

log = logging.getLogger("altkraft.inbound")
BATCH = 100
IDLE_SECONDS = 30           # one IDLE command waits this long, then the lease is renewed
POLL_SECONDS = 60           # a watcher's polling interval where the server offers no IDLE
LEASE_SECONDS = 120         # a reader's lease on a mailbox, renewed while it reads or waits
UNMATCHED_STATES = ("unmatched", "failed")
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


def state_key(box: dict) -> str:
    return f"inbound:imap:{box['username']}@{box['host']}:{box['port']}/{box['folder']}"


def connect(box: dict, timeout: float = 30.0) -> IMAPClient:
    context = ssl.create_default_context()
    if not box["verify_tls"]:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    client = IMAPClient(box["host"], port=box["port"], ssl=box["security"] == "tls",
                        ssl_context=context, timeout=timeout)
    if box["security"] == "starttls":
        client.starttls(context)
    if box["xoauth2_token_file"]:
        client.oauth2_login(box["username"], Path(box["xoauth2_token_file"]).read_text().strip())
    else:
        password = Path(box["password_file"]).read_text().rstrip("\r\n") if box["password_file"] else ""
        client.login(box["username"], password)
    return client


def _recipient(recogniser: Recogniser, box: dict, raw: bytes) -> str:
    """The envelope recipient the message stands for: the mailbox's rcpt, else the first
    recipient header that names an address of ours, else the To address."""
    if box["rcpt"]:
        return box["rcpt"]
    headers = read(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
    found = []
    for name in _RECIPIENT_HEADERS:
        for _, address in email.utils.getaddresses([str(v) for v in headers.get_all(name, [])]):
            if address:
                found.append(address)
    return next((a for a in found if recogniser.recognise(a)), found[-1] if found else "")


def _move(client: IMAPClient, uids: list[int], folder: str) -> None:
    if not uids:
        return
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    # No MOVE: copy, then flag and expunge only those UIDs (UIDPLUS) — the copy is the message.
    client.copy(uids, folder)
    client.add_flags(uids, [b"\\Deleted"])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)


def _saved(conn, box: dict) -> dict:
    return json.loads(get_state(conn, state_key(box)) or "{}")


def _reader(saved: dict, now: datetime) -> str | None:
    """Who holds the mailbox's reading lease (a watcher, or a poll under way), if anyone."""
    holder, until = saved.get("reader"), saved.get("reader_until")
    if holder and not lease_free(holder, datetime.fromisoformat(until) if until else None, now):
        return holder
    return None


def _update(engine, box: dict, **values) -> None:
    """Changes some keys of the mailbox's state, keeping the others."""
    with db.write(engine) as conn:
        saved = _saved(conn, box)
        saved.update(values)
        put_state(conn, state_key(box), json.dumps(saved))


def _checkpoint(engine, box: dict, validity: int, last_uid: int) -> None:
    _update(engine, box, uidvalidity=validity, last_uid=last_uid, polled_at=utcnow().isoformat(),
            error="")


def take(engine, box: dict, owner: str, seconds: float = LEASE_SECONDS) -> bool:
    """Takes (or renews) the mailbox's reading lease for `owner`; False while another reader
    holds it (a watcher in `altkraft inbound`, or a poll under way)."""
    try:
        with db.write(engine) as conn:
            saved = _saved(conn, box)
            now = utcnow()
            if _reader(saved, now) not in (None, owner):
                return False
            saved.update(reader=owner, reader_until=(now + timedelta(seconds=seconds)).isoformat())
            put_state(conn, state_key(box), json.dumps(saved))
        return True
    except IntegrityError:      # a concurrent taker won (Postgres: the same key inserted)
        log.debug("inbound: IMAP mailbox %s: lease not taken", state_key(box), exc_info=True)
        return False


def let_go(engine, box: dict, owner: str) -> None:
    with db.write(engine) as conn:
        saved = _saved(conn, box)
        if saved.get("reader") == owner:
            saved.pop("reader", None)
            saved.pop("reader_until", None)
            put_state(conn, state_key(box), json.dumps(saved))


def _prepare(client: IMAPClient, box: dict) -> int:
    """Selects the folder, creates the target folders; returns UIDVALIDITY."""
    selected = client.select_folder(box["folder"])
    for folder in (box["processed_folder"], box["unmatched_folder"]):
        if not client.folder_exists(folder):
            client.create_folder(folder)
    return int(selected.get(b"UIDVALIDITY", 0))


def read_new(engine, settings, box: dict, client: IMAPClient, validity: int, renew=None) -> dict:
    """Reads what is new in the selected folder: {"fetched", "processed", "unmatched"};
    `renew()` after each batch keeps the reader's lease."""
    recogniser = Recogniser(settings)
    counts = {"fetched": 0, "processed": 0, "unmatched": 0}
    with db.read(engine) as conn:
        saved = _saved(conn, box)
    last = saved.get("last_uid", 0) if saved.get("uidvalidity") == validity else 0
    uids = sorted(u for u in client.search(["UID", f"{last + 1}:*"]) if u > last)
    for start in range(0, len(uids), BATCH):
        chunk = uids[start:start + BATCH]
        stored: dict[int, int] = {}
        for uid, data in client.fetch(chunk, ["BODY.PEEK[]"]).items():
            raw = data.get(b"BODY[]") or b""
            with db.write(engine) as conn:
                stored[uid] = intake.store(conn, raw, source="imap", peer=box["host"],
                                           rcpt=_recipient(recogniser, box, raw))
        service.process_pending(engine, settings, ids=list(stored.values()))
        with db.read(engine) as conn:
            states = dict(conn.execute(select(inbound_messages.c.id, inbound_messages.c.state)
                                       .where(inbound_messages.c.id.in_(list(stored.values())))).all())
        unmatched = [u for u, i in stored.items() if states.get(i) in UNMATCHED_STATES]
        processed = [u for u in stored if u not in unmatched]
        _move(client, processed, box["processed_folder"])
        _move(client, unmatched, box["unmatched_folder"])
        counts["fetched"] += len(stored)
        counts["processed"] += len(processed)
        counts["unmatched"] += len(unmatched)
        last = max(chunk)
        _checkpoint(engine, box, validity, last)
        if renew is not None:
            renew()
    _checkpoint(engine, box, validity, last)       # read fine: no error to show
    return counts


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the session is over either way
        pass


def poll(engine, settings, box: dict) -> dict:
    """Reads what is new in one mailbox; {"fetched", "processed", "unmatched"}, or
    {"watched": True} when another reader (a watcher) holds it."""
    owner = owner_name()
    if not take(engine, box, owner):
        return {"watched": True}
    _update(engine, box, mode="")
    try:
        client = connect(box)
        try:
            return read_new(engine, settings, box, client, _prepare(client, box),
                            renew=lambda: take(engine, box, owner))
        finally:
            _logout(client)
    finally:
        let_go(engine, box, owner)


def _failed(engine, box: dict, exc: Exception) -> None:
    log.warning("inbound: IMAP mailbox %s: %s", state_key(box), exc)
    try:
        _update(engine, box, error=f"{exc.__class__.__name__}: {exc}"[:300],
                polled_at=utcnow().isoformat())
    except SQLAlchemyError:     # the database is what failed: the log is all there is
        log.exception("inbound: IMAP mailbox %s: its error could not be saved", state_key(box))


def poll_all(engine, settings) -> list[dict]:
    """Polls every configured mailbox no watcher holds; a mailbox that fails is logged and
    noted in its state (the Inbound page shows it), and the others are still read."""
    results = []
    for box in settings["inbound.imap"]:
        try:
            results.append({"mailbox": state_key(box), **poll(engine, settings, box)})
        except Exception as exc:  # noqa: BLE001 - network, login, server errors: next minute again
            _failed(engine, box, exc)
            results.append({"mailbox": state_key(box), "error": str(exc)[:300]})
    return results


class Watcher:
    """Reads one mailbox as mail arrives, in a thread of `altkraft inbound`: IMAP IDLE where
    the server offers it (and the mailbox's idle is on), else a poll every `poll_seconds`.
    Holds the mailbox's reading lease while it runs; a failure is noted in the mailbox's
    state and retried with back-off."""

    def __init__(self, engine, settings, box: dict, poll_seconds: float = POLL_SECONDS,
                 idle_seconds: float = IDLE_SECONDS):
        self.engine, self.settings, self.box = engine, settings, box
        self.poll_seconds, self.idle_seconds = poll_seconds, idle_seconds
        self.owner = owner_name()
        self.stop_event = threading.Event()
        self.mode = ""              # "idle" or "polling" once connected
        self._thread = threading.Thread(target=self._run, name=f"imap:{box['host']}", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            try:
                if not take(self.engine, self.box, self.owner):
                    self.stop_event.wait(5)          # a poll is under way, or another watcher
                    continue
                self._session()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - network, login, server, database: again later
                failures += 1
                _failed(self.engine, self.box, exc)
                self.stop_event.wait(min(60.0, 2.0 ** failures))
        let_go(self.engine, self.box, self.owner)

    def _session(self) -> None:
        client = connect(self.box)
        try:
            validity = _prepare(client, self.box)
            idle = self.box["idle"] and client.has_capability("IDLE")
            self.mode = "idle" if idle else "polling"
            _update(self.engine, self.box, mode=self.mode)
            read_new(self.engine, self.settings, self.box, client, validity, self._renew)
            while not self.stop_event.is_set():
                arrived = self._idle(client) if idle else self._wait()
                if not take(self.engine, self.box, self.owner):
                    return                        # lost the lease (this process stalled)
                if arrived or not idle:
                    read_new(self.engine, self.settings, self.box, client, validity, self._renew)
        finally:
            _logout(client)

    def _renew(self) -> None:
        take(self.engine, self.box, self.owner)

    def _idle(self, client: IMAPClient) -> bool:
        """One IDLE of up to idle_seconds; whether the server announced new mail."""
        client.idle()
        arrived = False
        deadline = self.idle_seconds
        while deadline > 0 and not arrived and not self.stop_event.is_set():
            responses = client.idle_check(timeout=min(1.0, deadline))
            arrived = any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
            deadline -= 1.0
        client.idle_done()
        return arrived

    def _wait(self) -> bool:
        self.stop_event.wait(self.poll_seconds)
        return False


def watch_all(engine, settings) -> list[Watcher]:
    """A started Watcher per configured mailbox (`altkraft inbound` runs them)."""
    return [Watcher(engine, settings, box).start() for box in settings["inbound.imap"]]


def mailbox_status(conn, settings) -> list[dict]:
    """Per configured mailbox: its name, last poll and last error (for the Inbound page)."""
    out = []
    for box in settings["inbound.imap"]:
        saved = _saved(conn, box)
        watched = _reader(saved, utcnow()) is not None
        out.append({"mailbox": state_key(box), "polled_at": saved.get("polled_at"),
                    "error": saved.get("error", ""),
                    # idle / polling: a watcher of `altkraft inbound` reads it; "": the minute job
                    "mode": saved.get("mode", "") if watched else ""})
    return out
