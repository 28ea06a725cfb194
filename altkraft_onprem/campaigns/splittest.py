"""Split tests (A/B): variants of a campaign, a test portion, a metric, a wait, a winner.

A campaign with a split test has 2 to 5 variants; each may change the subject, the From name
and/or the message (its version pinned at start, like the campaign's). When the campaign
starts, `test_percent` of its audience, in random order, is queued with variants 1..N in turn
(an even random split); everyone else is materialised in the ledger as `held`, which no
sender claims. `wait_hours` after the start (and once every test message has been handed
over) the winner is chosen on human figures of the test portion — machine-labelled opens and
clicks do not count — and the held rows are queued with the winner's variant. A person can
pick the winner earlier, or a different one, while the test runs.

Ties: the highest rate wins; on equal rates the variant with more delivered messages wins,
then the earlier variant (A before B) — so with no engagement at all, A goes out.
"""
from __future__ import annotations

from datetime import timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, select, true, update

from altkraft_onprem import extensions
from altkraft_onprem.access.models import Actor
from altkraft_onprem.access.service import record
from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError, Term
from altkraft_onprem.messages.render import check_version
from altkraft_onprem.messages.service import get_version, get_version_by_id, require_sendable

from . import ledger
from .models import (
    MAX_VARIANTS,
    MAX_WAIT_HOURS,
    MIN_VARIANTS,
    SPLIT_METRICS,
    campaigns,
    deliveries,
    split_tests,
    variant_letter,
)

VARIANT_KEYS = ("subject", "from_name", "message_id")
# A finished campaign may still be waiting for its winner: a 100 % test (nobody held) is
# decided for the record.
DECIDABLE = ("running", "paused", "finished")


def clean(conn: Connection, spec: Any) -> dict[str, Any] | None:
    """A split test as given by the UI or the API, checked; None removes it. Errors name
    the field as the API's validation does (0-based): split_test.variants.1.message_id."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ServiceError("must be an object", "split_test")
    variants = spec.get("variants")
    if not isinstance(variants, list) or not MIN_VARIANTS <= len(variants) <= MAX_VARIANTS:
        raise ServiceError("give %(min_variants)s to %(max_variants)s variants", "split_test.variants", min_variants=MIN_VARIANTS, max_variants=MAX_VARIANTS)
    cleaned = []
    for number, variant in enumerate(variants, start=1):
        field, letter = f"split_test.variants.{number - 1}", variant_letter(number)
        if not isinstance(variant, dict) or any(k not in VARIANT_KEYS for k in variant):
            raise ServiceError("variant %(letter)s has only %(variant_keys)s", field, letter=letter, variant_keys=', '.join(VARIANT_KEYS))
        subject = str(variant.get("subject") or "").strip() or None
        from_name = str(variant.get("from_name") or "").strip() or None
        if subject is not None and len(subject) > 500:
            raise ServiceError("variant %(letter)s: a subject of at most 500 characters",
                               f"{field}.subject", letter=letter)
        if from_name is not None and len(from_name) > 200:
            raise ServiceError("variant %(letter)s: a From name of at most 200 characters",
                               f"{field}.from_name", letter=letter)
        message_id = variant.get("message_id") or None
        if message_id is not None:
            _check_message(conn, message_id, f"{field}.message_id", letter)
        cleaned.append({"subject": subject, "from_name": from_name, "message_id": message_id,
                        "version_id": None})
    seen: dict[tuple, int] = {}
    for number, variant in enumerate(cleaned, start=1):
        key = tuple(variant[k] for k in VARIANT_KEYS)
        if key in seen:
            raise ServiceError("variant %(number)s is the same as variant %(seen)s", f"split_test.variants.{number - 1}", number=variant_letter(number), seen=variant_letter(seen[key]))
        seen[key] = number
    percent = spec.get("test_percent", 20)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ServiceError("a whole number from 1 to 100", "split_test.test_percent")
    metric = spec.get("metric", "opens")
    if metric not in SPLIT_METRICS:
        raise ServiceError("one of %(split_metrics)s", "split_test.metric", split_metrics=', '.join(SPLIT_METRICS))
    wait = spec.get("wait_hours", 4)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT_HOURS:
        raise ServiceError("hours from 0 to %(max_wait_hours)s", "split_test.wait_hours", max_wait_hours=MAX_WAIT_HOURS)
    return {"variants": cleaned, "test_percent": percent, "metric": metric,
            "wait_hours": float(wait)}


def _check_message(conn: Connection, message_id: Any, field: str, letter: str) -> None:
    if isinstance(message_id, bool) or not isinstance(message_id, int) or message_id < 1:
        raise ServiceError("variant %(letter)s: must be a message id", field, letter=letter)
    try:
        require_sendable(conn, message_id, field)
    except ServiceError as exc:      # 404 for a message that does not exist, 409 if archived
        raise type(exc)("variant %(letter)s: %(reason)s", field, letter=letter, reason=exc) from None


def save(conn: Connection, campaign_id: int, spec: dict[str, Any] | None) -> None:
    """Replaces the campaign's split test (a cleaned spec) or removes it (None)."""
    conn.execute(delete(split_tests).where(split_tests.c.campaign_id == campaign_id))
    if spec is not None:
        conn.execute(insert(split_tests).values(campaign_id=campaign_id, state="pending", **spec))


def get(conn: Connection, campaign_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(split_tests).where(
        split_tests.c.campaign_id == campaign_id)).mappings().first()
    return dict(row) if row is not None else None


# --- start: pin versions, build the ledger --------------------------------------------------

def pin(conn: Connection, campaign: dict[str, Any], test: dict[str, Any]) -> None:
    """At start: every variant's message version pinned and checked, the decision time set."""
    if test["state"] != "pending":
        return
    variants = []
    pinned = zip(test["variants"], variant_versions(conn, campaign), strict=True)
    for index, (variant, (letter, version)) in enumerate(pinned):
        problems = check_version(version)
        if problems:
            raise ServiceError("variant %(number)s has template errors: %(problems)s",
                               f"split_test.variants.{index}", number=letter, problems=problems[0])
        variants.append({**variant, "version_id": version["id"]})
    conn.execute(update(split_tests).where(split_tests.c.campaign_id == campaign["id"]).values(
        variants=variants, state="testing",
        decide_at=utcnow() + timedelta(hours=test["wait_hours"])))


def test_size(audience_size: int, variants: int, percent: int) -> int:
    """The test portion: percent of the audience (rounded down), but at least one person per
    variant when the audience has that many."""
    return min(audience_size, max(audience_size * percent // 100, variants))


def materialise(conn: Connection, campaign_id: int, audience, test: dict[str, Any]) -> int:
    size = conn.execute(select(func.count()).select_from(audience.subquery())).scalar_one()
    count = len(test["variants"])
    return ledger.materialise_split(conn, campaign_id, audience, count,
                                    test_size(size, count, test["test_percent"]))


def _overridden(version: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    return {**version, "subject": variant["subject"]} if variant.get("subject") else version


def variant_versions(conn: Connection, campaign: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """[(letter, version with the variant's subject)] of a split test, [] without one: the
    pinned versions once started, before that the ones a start would pin (pre-send checks)."""
    test = get(conn, campaign["id"])
    if test is None:
        return []
    found = []
    for number, variant in enumerate(test["variants"], start=1):
        if test["state"] != "pending" and variant.get("version_id"):
            version = get_version_by_id(conn, variant["version_id"])
        elif variant.get("message_id"):
            version = get_version(conn, variant["message_id"])
        elif campaign["version_id"]:
            version = get_version_by_id(conn, campaign["version_id"])
        else:
            version = get_version(conn, campaign["message_id"])
        found.append((variant_letter(number), _overridden(dict(version), variant)))
    return found


def sending_parts(conn: Connection, campaign: dict[str, Any]) -> dict[int, tuple[dict, dict]]:
    """{variant: (campaign values, message version)} the sender compiles, one per variant."""
    test = get(conn, campaign["id"])
    if test is None or test["state"] == "pending":
        return {0: (campaign, get_version_by_id(conn, campaign["version_id"]))}
    parts = {}
    for number, variant in enumerate(test["variants"], start=1):
        version = _overridden(get_version_by_id(conn, variant["version_id"]), variant)
        values = {**campaign, "from_name": variant["from_name"] or campaign["from_name"]}
        parts[number] = (values, version)
    return parts


# --- figures and the winner -----------------------------------------------------------------

def figures(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    """Per variant, over its test portion: recipients, delivered, unique human openers and
    clickers, and the rates (percent) the metrics compare."""
    test = get(conn, campaign_id)
    if test is None:
        return []
    d = deliveries.c
    rows = conn.execute(select(d.variant, func.count(), func.sum(case((d.state == "sent", 1), else_=0)))
                        .where(d.campaign_id == campaign_id, d.test_group == true())
                        .group_by(d.variant)).all()
    ledger_counts = {v: (n, int(sent or 0)) for v, n, sent in rows}
    engaged = extensions.SPLIT_TEST_ENGAGEMENT.ask(conn, campaign_id)     # tracking's answer
    out = []
    for number, variant in enumerate(test["variants"], start=1):
        recipients, delivered = ledger_counts.get(number, (0, 0))
        opens, clicks = engaged.get(number, (0, 0))
        out.append({"variant": number, "letter": variant_letter(number),
                    "subject": variant["subject"], "from_name": variant["from_name"],
                    "message_id": variant["message_id"], "version_id": variant["version_id"],
                    "recipients": recipients, "delivered": delivered,
                    "unique_opens": opens, "unique_clicks": clicks,
                    "open_rate": _percent(opens, delivered), "click_rate": _percent(clicks, delivered),
                    "click_to_open": _percent(clicks, opens)})
    return out


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _score(item: dict[str, Any], metric: str) -> Fraction:
    """Exact rates (no float rounding decides a close test)."""
    part, whole = {"opens": ("unique_opens", "delivered"), "clicks": ("unique_clicks", "delivered"),
                   "click_to_open": ("unique_clicks", "unique_opens")}[metric]
    return Fraction(item[part], item[whole]) if item[whole] else Fraction(0)


def choose(items: list[dict[str, Any]], metric: str) -> int:
    """The winning variant: highest rate; then more delivered; then the earlier variant."""
    if not items:
        raise ServiceError("the split test has no variants", "split_test")
    best = max(items, key=lambda i: (_score(i, metric), i["delivered"], -i["variant"]))
    return best["variant"]


def test_sending_done(conn: Connection, campaign_id: int) -> bool:
    """Whether every message of the test portion has been handed over (or given up); a test
    row is held only for a warm-up, and then it is still to come."""
    return conn.execute(select(deliveries.c.id).where(
        deliveries.c.campaign_id == campaign_id, deliveries.c.test_group == true(),
        deliveries.c.state.in_(("queued", "leased", "held"))).limit(1)).first() is None


def decide(conn: Connection, actor: Actor | None, campaign_id: int,
           variant: int | None = None) -> int:
    """Chooses the winner (by the metric, or the `variant` a person names) and queues the held
    rows with it. `actor` None: the automatic decision. Returns the winning variant."""
    test = get(conn, campaign_id)
    if test is None:
        raise NotFound("campaign %(campaign_id)s has no split test", campaign_id=campaign_id)
    state = conn.execute(select(campaigns.c.state).where(campaigns.c.id == campaign_id)).scalar()
    if test["state"] == "decided":
        raise Conflict("the winner is already chosen: variant %(winner)s", winner=variant_letter(test['winner']))
    if test["state"] != "testing" or state not in DECIDABLE:
        raise Conflict("a %(state)s campaign has no split test running", state=Term(state))
    items = figures(conn, campaign_id)
    if variant is not None and not 1 <= variant <= len(items):
        raise ServiceError("a variant from 1 to %(count)s", "variant", count=len(items))
    winner = variant if variant is not None else choose(items, test["metric"])
    by = actor.label if actor is not None else "automatic"
    result = conn.execute(update(split_tests).where(
        split_tests.c.campaign_id == campaign_id, split_tests.c.state == "testing").values(
        state="decided", winner=winner, decided_at=utcnow(), decided_by=by, results=items))
    if result.rowcount != 1:
        raise Conflict("the winner was chosen meanwhile; reload")
    released = ledger.release_held(conn, campaign_id, winner)
    if actor is not None:
        record(conn, actor, "campaign.split_test.winner", "campaign", campaign_id,
               variant=winner, released=released, chosen="manual" if variant else "metric")
    return winner


def due(conn: Connection) -> list[int]:
    """Split tests whose wait is over, of campaigns that started and were not cancelled."""
    return list(conn.execute(select(split_tests.c.campaign_id).join(
        campaigns, campaigns.c.id == split_tests.c.campaign_id).where(
        split_tests.c.state == "testing", split_tests.c.decide_at <= utcnow(),
        campaigns.c.state.in_(DECIDABLE))).scalars())


def overview(conn: Connection, campaign_id: int) -> dict[str, Any] | None:
    """What the campaign page and GET …/split-test show: settings, state, figures, winner."""
    test = get(conn, campaign_id)
    if test is None:
        return None
    return {"state": test["state"], "metric": test["metric"], "test_percent": test["test_percent"],
            "wait_hours": test["wait_hours"], "decide_at": test["decide_at"],
            "winner": test["winner"], "winner_letter": variant_letter(test["winner"] or 0) or None,
            "decided_at": test["decided_at"], "decided_by": test["decided_by"],
            "held": ledger.counts(conn, campaign_id)["held"],
            "variants": figures(conn, campaign_id)}


def decide_if_due(conn: Connection, campaign_id: int) -> bool:
    """The automatic decision, when its time has come and the test portion is all handed
    over; True when it chose a winner now."""
    test = get(conn, campaign_id)
    if test is None or test["state"] != "testing" or test["decide_at"] is None:
        return False
    if test["decide_at"] > utcnow() or not test_sending_done(conn, campaign_id):
        return False
    decide(conn, None, campaign_id)
    return True
