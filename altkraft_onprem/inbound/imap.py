"""IMAP polling of existing mailboxes ([[inbound.imap]]): each new message is stored in the
intake (source imap), run through the pipeline, then moved to processed_folder — or, when it
matches nothing sent from here (or cannot be read), to unmatched_folder. Nothing is deleted.

A UID checkpoint per mailbox (with its UIDVALIDITY) is kept in the app state after each move,
so a server without MOVE is never read twice; a crash between storing and moving reads the
message again, which the intake recognises (same message, same id).
"""
from __future__ import annotations

import email.utils
import json
import logging
import ssl
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.setup import get_state, put_state
from altkraft_onprem.db.types import utcnow

from . import intake, service
from .addresses import Recogniser
from .models import inbound_messages
from .parse import read

log = logging.getLogger("altkraft.inbound")
BATCH = 100
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


def _checkpoint(engine, box: dict, validity: int, last_uid: int) -> None:
    with db.write(engine) as conn:
        put_state(conn, state_key(box), json.dumps({"uidvalidity": validity, "last_uid": last_uid,
                                                    "polled_at": utcnow().isoformat(), "error": ""}))


def poll(engine, settings, box: dict) -> dict:
    """Reads what is new in one mailbox; {"fetched", "processed", "unmatched"}."""
    recogniser = Recogniser(settings)
    counts = {"fetched": 0, "processed": 0, "unmatched": 0}
    client = connect(box)
    try:
        selected = client.select_folder(box["folder"])
        validity = int(selected.get(b"UIDVALIDITY", 0))
        for folder in (box["processed_folder"], box["unmatched_folder"]):
            if not client.folder_exists(folder):
                client.create_folder(folder)
        with db.read(engine) as conn:
            saved = json.loads(get_state(conn, state_key(box)) or "{}")
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
        _checkpoint(engine, box, validity, last)       # polled fine: no error to show
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the session is over either way
            pass
    return counts


def poll_all(engine, settings) -> list[dict]:
    """Polls every configured mailbox; a mailbox that fails is logged and noted in its state
    (the Inbound page shows it), and the others are still read."""
    results = []
    for box in settings["inbound.imap"]:
        try:
            results.append({"mailbox": state_key(box), **poll(engine, settings, box)})
        except Exception as exc:  # noqa: BLE001 - network, login, server errors: next minute again
            log.warning("inbound: IMAP mailbox %s: %s", state_key(box), exc)
            with db.write(engine) as conn:
                saved = json.loads(get_state(conn, state_key(box)) or "{}")
                saved.update(error=f"{exc.__class__.__name__}: {exc}"[:300], polled_at=utcnow().isoformat())
                put_state(conn, state_key(box), json.dumps(saved))
            results.append({"mailbox": state_key(box), "error": str(exc)[:300]})
    return results


def mailbox_status(conn, settings) -> list[dict]:
    """Per configured mailbox: its name, last poll and last error (for the Inbound page)."""
    out = []
    for box in settings["inbound.imap"]:
        saved = json.loads(get_state(conn, state_key(box)) or "{}")
        out.append({"mailbox": state_key(box), "polled_at": saved.get("polled_at"),
                    "error": saved.get("error", "")})
    return out
