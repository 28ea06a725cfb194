"""Extension points: how a lower layer asks a question that only a higher one can answer.

Events (events.py) carry news upward: "this happened", and whoever cares reacts. Some lower
code needs an *answer* instead: a person's timeline lists the campaigns they were sent and
their opens and clicks; an engagement condition of a segment needs the tracking events; a
split test compares the variants' openers; a campaign's send run needs the sender processes.
The lower domain declares what it asks here, with the arguments and the answer's shape; the
higher domain's function that answers is registered at the composition root
(`reactions.connect_all()`), never by the domain that asks. So the imports still point down,
and automation or inbound can add their entries to a timeline the same way.

`ask` needs exactly one provider (it raises when there is none: the app was not built);
`collect` calls every provider in the order they were registered and returns their answers.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

_declared: dict[str, ExtensionPoint] = {}

Provider = Callable[..., Any]


class ExtensionPoint:
    def __init__(self, name: str, doc: str, *, single: bool = False) -> None:
        if name in _declared:
            raise ValueError(f"extension point {name!r} is declared twice")
        self.name, self.doc, self.single = name, doc, single
        self._providers: list[Provider] = []
        _declared[name] = self

    def provide(self, provider: Provider) -> Provider:
        """Registers a provider; registering the same one again is a no-op."""
        if provider in self._providers:
            return provider
        if self.single and self._providers:
            raise ValueError(f"extension point {self.name} takes one provider")
        self._providers.append(provider)
        return provider

    def withdraw(self, provider: Provider) -> None:
        self._providers.remove(provider)

    def ask(self, *args: Any, **kwargs: Any) -> Any:
        """The answer of the one provider."""
        if not self._providers:
            raise RuntimeError(f"nothing provides {self.name}: build the app (reactions.connect_all) first")
        return self._providers[0](*args, **kwargs)

    def collect(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Every provider's answer, in the order they were registered."""
        return [provider(*args, **kwargs) for provider in self._providers]

    def __repr__(self) -> str:
        return f"<ExtensionPoint {self.name}>"


def declared() -> dict[str, ExtensionPoint]:
    return dict(_declared)


# --- the extension points ----------------------------------------------------------------------
# Arguments are a connection and plain values; answers are plain values or SQL expressions.

CAMPAIGN_SENDERS = ExtensionPoint(
    "campaign.senders",
    "run(settings, engine, campaign_id, processes) -> [outcome with .paused]: send what is due "
    "of a running campaign with N sender processes (campaigns' send run calls it between "
    "its ledger steps).", single=True)

PERSON_TIMELINE = ExtensionPoint(
    "person.timeline",
    "(conn, subscriber_id, limit) -> [{at, kind, details}], newest first, at most `limit`: a "
    "person's activity that higher domains keep (campaigns received, opens and clicks); the "
    "person page and the GDPR export merge it with audience's own, in registration order.")

SEGMENT_ACTIVITY = ExtensionPoint(
    "segment.activity",
    "(rule, subscriber_id) -> SQL boolean: a segment's engagement condition (rule: operator "
    "did|did_not, activity open|click, optional campaign and days) over human events, "
    "correlated with the subscribers.id column given.", single=True)

SPLIT_TEST_ENGAGEMENT = ExtensionPoint(
    "splittest.engagement",
    "(conn, campaign_id) -> {variant: (unique human openers, unique human clickers)} over the "
    "split test's test-group rows of the ledger.", single=True)

MESSAGE_USERS = ExtensionPoint(
    "message.users",
    "(conn, message_id) -> {campaign id: name} of the campaigns that send the message (as "
    "theirs or a split-test variant's); a message in use cannot be archived.")

LIST_NAMES = ExtensionPoint(
    "audience.list_names",
    "(conn) -> {list id: name} of every list, by name; the roles page offers them to a role "
    "limited to some lists (access sits below audience).", single=True)

CAMPAIGN_START_CHECKS = ExtensionPoint(
    "campaign.start_checks",
    "(engine, settings, campaign_id) -> [reason]: what a higher domain says stops a campaign "
    "from starting (deliverability's pre-send checks past a line an administrator drew). "
    "Asked before the start's transaction (the checks may take seconds); empty: start.")
CAMPAIGN_RELEASE = ExtensionPoint(
    "campaign.release",
    "(conn, settings, campaign_id) -> rows queued: a running campaign's rows held for a "
    "warm-up, released as far as today's quotas allow (its send run asks at each pass).")

CAMPAIGN_HOLDS = ExtensionPoint(
    "campaign.holds",
    "(conn, campaign_id) -> {held, warmups: [{kind, name, day, days, quota}], providers: "
    "[{provider, label, held, released_today, quota}], next_release} or None: why a campaign's "
    "rows are held for a warm-up, for its page and API.", single=True)
