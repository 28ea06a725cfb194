"""Transactional sends: one message to one person, now, with the request's own data.

An accepted request is a row of `transactional_sends` — its UNIQUE idempotency key makes the
same key answer the same row and queue nothing more — and a ledger row of the message
version's *carrier*: a running campaign marked transactional, without lists or tracking,
whose ledger takes one row per request (occurrence = the send's id). The campaign senders
deliver those rows with their journal, leases and in-doubt rules unchanged, so a request is
sent at most once. The address is checked against the suppression list when the request
comes (409 with the reason, nothing queued) and again when its row's turn comes; a category
the settings name strictly transactional (`transactional.strict_categories`) is sent despite
a suppression, never to an address that hard-bounced.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, and_, bindparam, insert, literal, or_, select, update

from altkraft_onprem import db
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.audience import subscribers as people
from altkraft_onprem.audience.models import (
    FieldError,
    email_domain,
    normalise_email,
    subscribers,
    suppressions,
)
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError, Term
from altkraft_onprem.i18n import N_
from altkraft_onprem.messages.models import message_versions, messages
from altkraft_onprem.messages.render import check_version
from altkraft_onprem.messages.service import get_message, get_version

from .models import TRANSACTIONAL_MODES, campaigns, deliveries, transactional_sends

CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,75}$")
MAX_HEADERS = 20
MAX_DATA_BYTES = 65536
# What the message itself must say (addresses, identity, structure, signatures) or what only
# bulk mail carries: a request cannot set them.
RESERVED_HEADERS = frozenset({
    "from", "sender", "to", "cc", "bcc", "subject", "date", "message-id", "return-path",
    "mime-version", "content-type", "content-transfer-encoding", "content-disposition",
    "dkim-signature", "received", "list-id", "list-unsubscribe", "list-unsubscribe-post",
    "feedback-id", "precedence"})
# Why an address is not sent to, by suppression source (a hard bounce always refuses).
HARD_BOUNCE = "bounce"
# A carrier in these states takes rows (a paused one sends them when it is resumed).
CARRIER_STATES = ("running", "paused")
# How many carriers one request tries before it gives up (each found just before its try).
CARRIER_TRIES = 3
REFUSAL_LABELS = (N_("hard bounce"), N_("complaint"), N_("unsubscribed from everything"),
                  N_("suppressed"))


@dataclass
class Request:
    """One POST /api/v1/transactional, as the service takes it."""

    message_id: int
    mode: str
    subscriber_id: int | None = None
    email: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    category: str | None = None

    def fingerprint(self) -> str:
        """What makes two requests the same one (everything but the key)."""
        body = {"message_id": self.message_id, "mode": self.mode,
                "subscriber_id": self.subscriber_id, "email": self.email, "data": self.data,
                "headers": self.headers, "category": self.category}
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False,
                                         default=str).encode("utf-8")).hexdigest()


@dataclass
class Accepted:
    id: int
    campaign_id: int
    replayed: bool = False          # the idempotency key named an earlier request


def strict_categories(settings) -> frozenset[str]:
    return frozenset(c.strip().lower() for c in settings["transactional.strict_categories"])


def accept(conn: Connection, actor: Actor, settings, request: Request) -> Accepted:
    """Queues one send (the caller wakes the carrier's send run after the commit). The same
    idempotency key again answers the earlier send, queuing nothing; with another request
    it is a Conflict. A suppressed address is a Conflict naming the reason.

    The hot path of the API (hundreds a second): three statements for an outside address —
    the key claimed by the insert itself, the suppression list, the ledger row (whose insert
    also checks that the cached carrier still takes rows) — each built once."""
    _check(request)
    if not settings["smtp.relays"]:
        raise Conflict("no SMTP relay is configured ([[smtp.relays]])", "smtp.relays")
    category = request.category.lower() if request.category else None
    strict = category is not None and category in strict_categories(settings)
    campaign_id = carriers.get(conn, actor, settings, request.message_id)
    subscriber_id, email, state = _recipient(conn, request)
    values = {"idempotency_key": request.idempotency_key, "request_hash": request.fingerprint(),
              "campaign_id": campaign_id, "message_id": request.message_id,
              "subscriber_id": subscriber_id or 0, "email": email, "mode": request.mode,
              "category": category, "strict": strict, "token_id": actor.token_id,
              "created_by": actor.label[:320], "created_at": utcnow()}
    send_id = conn.execute(_statements(conn).insert_send, values).scalar()
    if send_id is None:         # the key is taken (Postgres: by a request that just committed)
        return _replayed(_by_key(conn, request.idempotency_key), request)
    refusal = _reason(_suppression_sources(conn, email, state), strict)
    if refusal is not None:     # raised: the transaction and the key's claim are rolled back
        raise Conflict("%(email)s is suppressed (%(reason)s): nothing was sent", "to",
                       email=email, reason=refusal)
    if request.mode == "create" and subscriber_id is None:
        subscriber_id = people.create_subscriber(conn, actor, {"email": email},
                                                 source="transactional API")
        conn.execute(update(transactional_sends).where(transactional_sends.c.id == send_id)
                     .values(subscriber_id=subscriber_id))
    row = {"campaign_id": campaign_id, "subscriber_id": subscriber_id or 0, "occurrence": send_id,
           "context": {"to": email, "data": request.data, "headers": request.headers,
                       "strict": strict}}
    # The ledger row's key (carrier, subscriber, occurrence = this send's new id) is new: its
    # insert cannot meet a duplicate. It inserts nothing when the carrier stopped taking rows
    # (cancelled, finished) since it was cached — or, on Postgres, since it was found, by a
    # transaction that committed in between: then the current carrier, a few times at most.
    for attempt in range(CARRIER_TRIES):
        if attempt:
            carriers.forget(request.message_id)
            row["campaign_id"] = campaign_id = carriers.get(conn, actor, settings, request.message_id)
            conn.execute(update(transactional_sends).where(transactional_sends.c.id == send_id)
                         .values(campaign_id=campaign_id))
        if conn.execute(_statements(conn).queue_row, row).rowcount == 1:
            return Accepted(send_id, campaign_id)
    # Raised: the transaction, the key's claim included, is rolled back; the same request
    # (and key) may be sent again.
    raise Conflict("the message's transactional campaign stopped taking sends while this "
                   "request was stored: nothing was queued; send the request again", "message_id")


class _Statements:
    """The accept path's statements, built once per dialect (building a statement costs more
    than running it)."""

    def __init__(self, conn: Connection):
        self.insert_send = db.insert_ignoring_conflicts(
            conn, transactional_sends, ["idempotency_key"]).returning(transactional_sends.c.id)
        d = deliveries.c
        self.queue_row = insert(deliveries).from_select(
            ["campaign_id", "subscriber_id", "occurrence", "variant", "state", "attempts",
             "test_group", "context"],
            select(campaigns.c.id, bindparam("subscriber_id", type_=d.subscriber_id.type),
                   bindparam("occurrence", type_=d.occurrence.type), literal(0),
                   literal("queued"), literal(0), literal(False),
                   bindparam("context", type_=d.context.type)).where(
                campaigns.c.id == bindparam("campaign_id"),
                campaigns.c.state.in_(CARRIER_STATES))).execution_options(
            # Without it SQLAlchemy answers -1 for an INSERT … SELECT on Postgres, whether it
            # inserted a row or none (accept reads the count).
            preserve_rowcount=True)


_STATEMENTS: dict[str, _Statements] = {}


def _statements(conn: Connection) -> _Statements:
    found = _STATEMENTS.get(conn.dialect.name)
    if found is None:
        found = _STATEMENTS[conn.dialect.name] = _Statements(conn)
    return found


def _check(request: Request) -> None:
    if request.mode not in TRANSACTIONAL_MODES:
        raise ServiceError("mode must be one of %(modes)s", "mode",
                           modes=", ".join(TRANSACTIONAL_MODES))
    if (request.subscriber_id is None) == (not request.email):
        raise ServiceError("give either subscriber_id or email", "to")
    if request.mode != "existing" and request.subscriber_id is not None:
        raise ServiceError("mode %(mode)s takes an email address, not a subscriber_id",
                           "to.subscriber_id", mode=request.mode)
    if request.category is not None and not CATEGORY.match(request.category.lower()):
        raise ServiceError("a category is 1 to 64 letters, digits, dots, dashes or "
                           "underscores", "category")
    if request.idempotency_key is not None and not (
            0 < len(request.idempotency_key) <= 200 and request.idempotency_key.isprintable()):
        raise ServiceError("an idempotency key is 1 to 200 printable characters", "idempotency_key")
    if not isinstance(request.data, dict):
        raise ServiceError("data must be a JSON object", "data")
    if len(json.dumps(request.data, ensure_ascii=False, default=str).encode("utf-8")) > MAX_DATA_BYTES:
        raise ServiceError("data may be at most %(limit)s bytes of JSON", "data", limit=MAX_DATA_BYTES)
    request.headers = clean_headers(request.headers)


def clean_headers(headers: dict[str, str]) -> dict[str, str]:
    """The request's extra headers, checked: names of letters, digits and dashes, none the
    message sets itself, values on one line (Reply-To: one address)."""
    if len(headers) > MAX_HEADERS:
        raise ServiceError("at most %(limit)s headers", "headers", limit=MAX_HEADERS)
    clean: dict[str, str] = {}
    for name, value in headers.items():
        where = f"headers.{name}"
        if not HEADER_NAME.match(name):
            raise ServiceError("a header name is letters, digits and dashes", where)
        if name.lower() in RESERVED_HEADERS:
            raise ServiceError("the message sets %(name)s itself", where, name=name)
        if name.lower() in {n.lower() for n in clean}:
            raise ServiceError("header %(name)s is given twice", where, name=name)
        if not isinstance(value, str) or "\r" in value or "\n" in value or len(value) > 900:
            raise ServiceError("a header value is one line of at most 900 characters", where)
        if name.lower() == "reply-to":
            try:
                value = normalise_email(value)
            except FieldError as exc:
                raise ServiceError.like(exc, where) from None
            name = "Reply-To"
        clean[name] = value
    return clean


def _by_key(conn: Connection, key: str):
    return conn.execute(select(transactional_sends.c.id, transactional_sends.c.request_hash,
                               transactional_sends.c.campaign_id).where(
        transactional_sends.c.idempotency_key == key)).first()


def _replayed(earlier, request: Request) -> Accepted:
    if earlier.request_hash != request.fingerprint():
        raise Conflict("idempotency key %(key)s was used for another request (send "
                       "%(send_id)s)", "idempotency_key", key=repr(request.idempotency_key),
                       send_id=earlier.id)
    return Accepted(earlier.id, earlier.campaign_id, replayed=True)


def _recipient(conn: Connection, request: Request) -> tuple[int | None, str, str | None]:
    """(subscriber id — None for an address outside the audience or one `create` adds —,
    address, the subscriber's state)."""
    s = subscribers.c
    if request.subscriber_id is not None:
        row = conn.execute(select(s.id, s.email, s.state).where(
            s.id == request.subscriber_id, s.deleted_at.is_(None))).first()
        if row is None:
            raise NotFound("subscriber %(subscriber_id)s does not exist", "to.subscriber_id",
                           subscriber_id=request.subscriber_id)
        return row.id, row.email, row.state
    try:
        email = normalise_email(request.email or "")
    except FieldError as exc:
        raise ServiceError.like(exc, "to.email") from None
    if request.mode == "external":
        return None, email, None
    found = conn.execute(select(s.id, s.state, s.deleted_at).where(s.email == email)).first()
    if found is not None and found.deleted_at is None:
        return found.id, email, found.state
    if request.mode == "existing":
        raise NotFound("no subscriber with the address %(email)s", "to.email", email=email)
    if found is not None:
        raise Conflict("%(email)s is a subscriber in the trash: restore it first", "to.email",
                       email=email)
    return None, email, None


_SOURCES = select(suppressions.c.source).where(or_(
    suppressions.c.email == bindparam("email"), suppressions.c.domain == bindparam("domain")))
# A subscriber's state says the same as an entry would (an entry may have been removed since).
_STATE_SOURCES = {"bounced": HARD_BOUNCE, "complained": "complaint", "suppressed": "manual"}


def _suppression_sources(conn: Connection, email: str, state: str | None) -> set[str]:
    """The sources of the suppression entries covering the address (and its owner's state)."""
    sources = set(conn.execute(_SOURCES, {"email": email, "domain": email_domain(email)})
                  .scalars())
    return _with_state(sources, state)


def _with_state(sources: set[str], state: str | None) -> set[str]:
    if state in _STATE_SOURCES:
        sources.add(_STATE_SOURCES[state])
    return sources


def _sources_among(conn: Connection, emails: set[str]) -> dict[str, set[str]]:
    """`_suppression_sources` of many addresses in one query (without the owners' states):
    {address: sources}, empty sets included."""
    domains = {email_domain(e) for e in emails}
    by_email: dict[str, set[str]] = {}
    by_domain: dict[str, set[str]] = {}
    if emails:
        x = suppressions.c
        for email, domain, source in conn.execute(select(x.email, x.domain, x.source).where(or_(
                db.among(conn, x.email, sorted(emails)), db.among(conn, x.domain, sorted(domains))))):
            if email in emails:
                by_email.setdefault(email, set()).add(source)
            if domain in domains:
                by_domain.setdefault(domain, set()).add(source)
    return {e: by_email.get(e, set()) | by_domain.get(email_domain(e), set()) for e in emails}


def _reason(sources: set[str], strict: bool) -> Term | None:
    if HARD_BOUNCE in sources:
        return Term("hard bounce")
    if strict or not sources:
        return None
    if "complaint" in sources:
        return Term("complaint")
    if sources == {"unsubscribe"}:
        return Term("unsubscribed from everything")
    return Term("suppressed")


def find_carrier(conn: Connection, actor: Actor, settings, message_id: int) -> int:
    """The running transactional campaign of the message's current version and the default
    sender (made when there is none yet). NotFound for a message that does not exist; a
    ServiceError for an archived one or one whose template is broken."""
    from_email, from_name, reply_to = default_sender(settings)
    v = message_versions.c
    found = conn.execute(select(campaigns.c.id).select_from(campaigns.join(
        messages, messages.c.id == campaigns.c.message_id).join(
        message_versions, and_(v.id == campaigns.c.version_id, v.message_id == messages.c.id,
                               v.version == messages.c.current_version))).where(
        campaigns.c.message_id == message_id, campaigns.c.transactional.is_(True),
        # A carrier paused (every relay was down) keeps taking rows: they go out on resume.
        campaigns.c.state.in_(CARRIER_STATES), messages.c.archived_at.is_(None),
        campaigns.c.from_email == from_email, campaigns.c.from_name == from_name,
        campaigns.c.reply_to.is_(None) if reply_to is None else campaigns.c.reply_to == reply_to,
    ).order_by(campaigns.c.id).limit(1)).scalar()
    if found is not None:
        return found
    message = get_message(conn, message_id)
    if message["archived_at"] is not None:
        raise Conflict("message %(message_id)s (%(name)s) is archived: restore it from the "
                           "archived messages first", "message_id", message_id=message_id,
                           name=message["name"])
    version = get_version(conn, message_id)
    problems = check_version(version)
    if problems:
        raise ServiceError("the message has template errors: %(problems)s", "message_id",
                           problems=problems[0])
    now = utcnow()
    campaign_id = conn.execute(insert(campaigns).values(
        name=message["name"][:200], state="running", message_id=message_id,
        version_id=version["id"], from_email=from_email, from_name=from_name, reply_to=reply_to,
        list_ids=[], segment_ids=[], exclude_list_ids=[], exclude_segment_ids=[], utm={},
        link_utm={}, track_opens=False, track_clicks=False, timezone="UTC", ledger_built=True,
        total=0, created_at=now, updated_at=now, created_by=actor.label[:320], started_at=now,
        transactional=True).returning(campaigns.c.id)).scalar_one()
    record(conn, actor, "campaign.create", "campaign", campaign_id, transactional=True,
           message_id=message_id, version_id=version["id"])
    return campaign_id


class Carriers:
    """The carrier of each message, remembered in this process for CACHE_SECONDS: a message
    saved with a new version (or a new default sender) is sent as such within that time. A
    carrier that stopped taking rows meanwhile is noticed by the insert of the ledger row."""

    CACHE_SECONDS = 1.0

    def __init__(self):
        self._found: dict[tuple, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, actor: Actor, settings, message_id: int) -> int:
        key = (message_id, default_sender(settings), conn.engine.url)
        now = time.monotonic()
        found = self._found.get(key)
        if found is not None and now - found[1] < self.CACHE_SECONDS:
            return found[0]
        campaign_id = find_carrier(conn, actor, settings, message_id)
        with self._lock:
            self._found[key] = (campaign_id, now)
        return campaign_id

    def forget(self, message_id: int | None = None) -> None:
        with self._lock:
            if message_id is None:
                self._found.clear()
            else:
                for key in [k for k in self._found if k[0] == message_id]:
                    del self._found[key]


carriers = Carriers()


def default_sender(settings) -> tuple[str, str, str | None]:
    """(From address, From name, Reply-To) of transactional mail: the Settings page's default
    sender (noreply@ the public host without one)."""
    raw = (settings["audience.from_email"], settings["audience.from_name"],
           settings["audience.reply_to"], settings["server.public_url"])
    found = _SENDERS.get(raw)
    if found is None:       # checking the address costs more than the rest of a request
        from_email = raw[0] or f"noreply@{urlsplit(raw[3]).hostname}"
        found = _SENDERS[raw] = (normalise_email(from_email), (raw[1] or "")[:200], raw[2] or None)
    return found


_SENDERS: dict[tuple, tuple[str, str, str | None]] = {}


def superseded(conn: Connection, campaign_id: int) -> bool:
    """A carrier that a newer one of the same message replaced (its version or sender is no
    longer current): it may finish once its rows are final. Others stay running."""
    row = conn.execute(select(campaigns.c.message_id, campaigns.c.transactional).where(
        campaigns.c.id == campaign_id)).first()
    if row is None or not row.transactional:
        return False
    return conn.execute(select(campaigns.c.id).where(
        campaigns.c.message_id == row.message_id, campaigns.c.transactional.is_(True),
        campaigns.c.id > campaign_id).limit(1)).first() is not None


# --- for the sender ---------------------------------------------------------------------------

def row_recipients(conn: Connection, campaign_id: int, row_ids: list[int]) -> tuple[dict, set]:
    """({row id: render context with the request's data and headers}, row ids that may be
    sent now): each row of a carrier is its own recipient, in the audience or not. A few
    queries for the whole batch, whatever its size (the suppression list, the people's
    states), with the accept path's rules."""
    rows = conn.execute(select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.context)
                        .where(deliveries.c.id.in_(row_ids))).all()
    known = people.render_context(conn, [r.subscriber_id for r in rows if r.subscriber_id])
    states = dict(conn.execute(select(subscribers.c.id, subscribers.c.state).where(
        db.among(conn, subscribers.c.id, list(known)), subscribers.c.deleted_at.is_(None))).all()
    ) if known else {}
    contexts: dict[int, dict] = {}
    strict: dict[int, bool] = {}
    for row in rows:
        request = row.context or {}
        if row.subscriber_id:
            person = known.get(row.subscriber_id)
            if person is None or row.subscriber_id not in states:
                continue
            person = dict(person)
        else:
            person = outsider(request.get("to") or "")
        person["transactional"] = {"data": request.get("data") or {},
                                   "headers": request.get("headers") or {}}
        contexts[row.id] = person
        strict[row.id] = bool(request.get("strict"))
    sources = _sources_among(conn, {person["email"] for person in contexts.values()})
    sendable = {row_id for row_id, person in contexts.items() if _reason(
        _with_state(set(sources[person["email"]]), states.get(person["id"])), strict[row_id]) is None}
    return contexts, sendable


def outsider(email: str) -> dict[str, Any]:
    """The render context of an address outside the audience: every field empty."""
    person: dict[str, Any] = {"id": 0, **dict.fromkeys(people.STANDARD_FIELDS, ""), "custom": {},
                              "created_at": ""}
    person["email"] = email
    return person
