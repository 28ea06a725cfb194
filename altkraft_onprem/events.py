"""Domain events: the one way a lower layer makes a higher one react.

A service whose change another domain must react to emits a named event inside its own
transaction, passing the connection it writes with::

    events.SUBSCRIBERS_ERASED.emit(conn, subscriber_ids=[7, 9])

Handlers are connected at a composition root (`reactions.connect_all()`), never by the domain
that emits. They run synchronously, in the emitting transaction, in the order they were
connected; an exception in a handler rolls the whole change back. So a reaction is exactly as
durable as the change it reacts to — which is what lets the automation outbox be one more
handler (it writes its row in the same transaction) and deliver the event later, exactly once.

Every event is declared here, once, with the keys its payload carries: the list below is the
reference for handlers, for the outbox and for the webhook event types built on it.
blinker (already a Flask dependency) keeps the receivers; a `DomainEvent` only adds the payload
check and the connection as the sender. (When a lower domain needs an answer rather than a
reaction — a person's timeline, a split test's openers — it asks through an extension point:
extensions.py.)
"""
from __future__ import annotations

from collections.abc import Callable

from blinker import Namespace

_namespace = Namespace()
_declared: dict[str, DomainEvent] = {}

Handler = Callable[..., None]


class DomainEvent:
    """A named event with a declared payload. `emit` calls every connected handler as
    `handler(conn, **payload)`."""

    def __init__(self, name: str, keys: tuple[str, ...], doc: str) -> None:
        if name in _declared:
            raise ValueError(f"domain event {name!r} is declared twice")
        self.name = name
        self.keys = frozenset(keys)
        self.doc = doc
        self._signal = _namespace.signal(name, doc)
        _declared[name] = self

    def connect(self, handler: Handler) -> Handler:
        """Registers a handler (held strongly: handlers are module-level functions or closures
        made at start-up). Connecting the same handler twice is a no-op."""
        self._signal.connect(handler, weak=False)
        return handler

    def disconnect(self, handler: Handler) -> None:
        self._signal.disconnect(handler)

    def _check(self, payload: dict) -> None:
        missing = self.keys - payload.keys()
        unknown = payload.keys() - self.keys
        if missing or unknown:
            raise TypeError(f"event {self.name}: missing {sorted(missing)}, unknown {sorted(unknown)}")

    def emit(self, conn, **payload) -> None:
        self._check(payload)
        if not self._signal.receivers:
            return
        for receiver in self._signal.receivers_for(conn):
            receiver(conn, **payload)

    def emit_many(self, conn, payloads: list[dict]) -> None:
        """`emit` of several occurrences at once (a batch job's): each handler gets them all,
        in order — through its `many(conn, payloads)` when it has one (set-based), else one
        call per payload. Handlers are independent, so handler by handler is the same as
        event by event."""
        for payload in payloads:
            self._check(payload)
        if not payloads or not self._signal.receivers:
            return
        for receiver in self._signal.receivers_for(conn):
            many = getattr(receiver, "many", None)
            if many is not None:
                many(conn, payloads)
            else:
                for payload in payloads:
                    receiver(conn, **payload)

    @property
    def has_handlers(self) -> bool:
        """Lets an emitter skip building an expensive payload nobody listens to."""
        return bool(self._signal.receivers)

    def wanted(self, conn=None) -> bool:
        """Whether emitting now would reach a handler that wants it. A handler may carry a
        `wants(conn)` probe (the automation outbox's: does an active workflow or webhook listen
        to this event?); one without a probe always wants. With conn None (no transaction at
        hand) a probe answers from what it knows and errs on yes. For a hot path that would
        otherwise build a payload per message."""
        for receiver in self._signal.receivers_for(conn):
            probe = getattr(receiver, "wants", None)
            if probe is None or probe(conn):
                return True
        return False

    def __repr__(self) -> str:
        return f"<DomainEvent {self.name}>"


def declared() -> dict[str, DomainEvent]:
    """Every declared event by name (for the outbox, the docs and the tests)."""
    return dict(_declared)


# --- the events -----------------------------------------------------------------------------
# Keep each payload small and made of plain values (ids, strings, numbers, ISO times): the
# automation outbox stores payloads as JSON.

SUBSCRIBERS_ERASED = DomainEvent(
    "subscriber.erased", ("subscriber_ids",),
    "People were erased for good (GDPR erasure, the trash purge): everything keyed by their "
    "ids must go in the same transaction.")

EMAIL_BOUNCED = DomainEvent(
    "email.bounced",
    ("bounce_id", "subscriber_id", "campaign_id", "email", "bounce_class", "status", "provider",
     "suppressed"),
    "A message came back undeliverable (a DSN, a relay webhook, a relay's 5xx), attributed to "
    "a subscriber and classified: bounce_class is hard, soft, policy, content or unknown; "
    "status the enhanced status code (\"5.1.1\") or \"\"; provider the mailbox provider "
    "(gmail, outlook, yahoo, mailru, yandex, other); suppressed whether this bounce "
    "suppressed the address. campaign_id is None when the bounce names no campaign.")

EMAIL_REJECTED = DomainEvent(
    "email.rejected", ("campaign_id", "subscriber_id", "email", "code", "reply"),
    "The relay refused a campaign message for good while it was being sent (a synchronous "
    "5xx: code and the relay's text); inbound mail records it as a bounce, which may suppress "
    "the address and then emits email.bounced. email is the address when the message went to "
    "no subscriber (a transactional send to an outside address, subscriber_id 0), else None.")

EMAIL_COMPLAINED = DomainEvent(
    "email.complained",
    ("complaint_id", "subscriber_id", "campaign_id", "email", "feedback_type", "provider"),
    "A recipient reported a message as spam (an ARF abuse/fraud report from a feedback loop, "
    "or a relay webhook), attributed to a subscriber, who is suppressed from everything in "
    "the same transaction. feedback_type is the ARF Feedback-Type (abuse, fraud, virus, "
    "other); campaign_id is None when the report names no campaign.")

# People. `source` of a new person: form, import:<id>, api, manual, … (what the row says).
SUBSCRIBER_CREATED = DomainEvent(
    "subscriber.created", ("subscriber_id", "source"),
    "One person was added (a form, the API, the UI; imports emit subscribers.imported).")
SUBSCRIBER_UPDATED = DomainEvent(
    "subscriber.updated", ("subscriber_id", "changes"),
    "A person's fields changed: changes = {field: {\"from\": old, \"to\": new}} (custom fields "
    "as custom.KEY, dates as ISO text).")
SUBSCRIBERS_DELETED = DomainEvent(
    "subscriber.deleted", ("subscriber_ids", "batch_id"),
    "People were moved to the trash (one deletion batch).")
SUBSCRIBERS_RESTORED = DomainEvent(
    "subscriber.restored", ("subscriber_ids",),
    "People were taken out of the trash.")
SUBSCRIBERS_IMPORTED = DomainEvent(
    "subscribers.imported", ("import_id", "added", "updated", "joined"),
    "One written batch of an import (or bulk API call): ids added and updated, and "
    "joined = [[list id, [subscriber ids]]] of new memberships.")

# Memberships.
SUBSCRIPTION_JOINED = DomainEvent(
    "subscription.joined", ("subscriber_id", "list_id", "status"),
    "A person joined a list (status confirmed, or unconfirmed until a double opt-in).")
SUBSCRIPTION_CONFIRMED = DomainEvent(
    "subscription.confirmed", ("subscriber_id", "list_id"),
    "An unconfirmed membership became confirmed (the double opt-in link, or a person's edit).")
SUBSCRIPTION_UNSUBSCRIBED = DomainEvent(
    "subscription.unsubscribed", ("subscriber_id", "list_id"),
    "A membership became unsubscribed.")

# The suppression list.
SUPPRESSION_ADDED = DomainEvent(
    "suppression.added", ("entry_id", "email", "domain", "source"),
    "An address or domain was put on the suppression list.")
SUPPRESSION_REMOVED = DomainEvent(
    "suppression.removed", ("entry_id", "email", "domain"),
    "An address or domain was taken off the suppression list.")

IMPORT_FINISHED = DomainEvent(
    "import.finished", ("import_id", "state", "counts"),
    "An import ended (state finished or failed; counts by outcome).")

# Campaigns.
CAMPAIGN_STARTED = DomainEvent("campaign.started", ("campaign_id",), "A campaign started sending.")
CAMPAIGN_PAUSED = DomainEvent("campaign.paused", ("campaign_id", "reason"),
                              "A campaign was paused (by a person, or by the sender: reason).")
CAMPAIGN_FINISHED = DomainEvent("campaign.finished", ("campaign_id",),
                                "Every ledger row of a campaign is final.")

# Delivery outcomes, per ledger row: outcomes = [[campaign id, subscriber id, occurrence,
# state]] with state sent, failed or in_doubt.
DELIVERY_OUTCOMES = DomainEvent(
    "delivery.outcomes", ("outcomes",),
    "Ledger rows reached a final state (sent, failed, in_doubt).")

# Engagement written by a tracking flush: events = [{kind, campaign_id, subscriber_id,
# link_index, machine, at}], kind open, read or click.
EMAIL_TRACKED = DomainEvent(
    "email.tracked", ("events",),
    "Opens, reads and clicks written by one tracking flush.")

# Deliverability's scheduled and on-demand checks.
DELIVERABILITY_REGRESSED = DomainEvent(
    "deliverability.regressed", ("kind", "subject", "check", "status", "previous", "detail"),
    "A DNS or blocklist check got worse: kind domain (check spf, dkim, dmarc, ptr, mx, mta_sts, "
    "tls_rpt or blocklist of the sending domain `subject`) or ip / name (`subject` listed on the "
    "blocklist zone `check`); status fail or missing, previous pass or warn. \"Could not check\" "
    "(a DNS timeout) never raises it.")
