"""The campaign roll-up: what a campaign report shows, kept up to date by every event flush so
that a report page reads a few hundred rows, not the campaign's (possibly millions of) events.

- campaign_counts: events per (kind, machine, reading class) and the sum of measured seconds;
- campaign_hours: opens/clicks per hour (days are summed hours);
- campaign_people: who was already counted as opener/clicker (any, and human: "_h");
- campaign_uniques: people per metric and recipient domain (new campaign_people rows add one);
- campaign_agents: openers by the user agent of their first open (mail client / device).

Every row carries the recipient's ledger variant (0 without a split test). A click relabelled
machine after the fact (scanner detection looks back `tracking.scanner_window_seconds`) is
moved from the human to the machine figures by `relabel_clicks`. `rebuild` computes all of it
from the events (bulk loads, upgrades).
"""
from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, and_, delete, func, literal, or_, select

from altkraft_onprem.audience.models import subscribers
from altkraft_onprem.campaigns.models import deliveries
from altkraft_onprem.db import periods

from .bulk import CHUNK, insert_new, rows_with, upsert
from .models import (
    CLICK,
    OPEN,
    campaign_agents,
    campaign_counts,
    campaign_hours,
    campaign_people,
    campaign_uniques,
    tracking_events,
)

Pair = tuple[int, int]


def _add(conn: Connection, table, keys: list[str], measures: list[str], rows: list[dict]) -> None:
    """Upsert adding `measures` (one executemany; negative values subtract)."""
    if not rows:
        return
    stmt = upsert(conn, table)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=keys, set_={m: table.c[m] + stmt.excluded[m] for m in measures}), rows)


def per_campaign(pairs) -> list[tuple[int, list[int]]]:
    """(campaign, up to CHUNK subscribers) groups: `campaign_id = c AND subscriber_id IN (…)`
    uses the (campaign, subscriber) indexes on both databases; a row-value IN list made SQLite
    scan the whole table."""
    by: dict[int, list[int]] = {}
    for campaign_id, subscriber_id in sorted(pairs):
        by.setdefault(campaign_id, []).append(subscriber_id)
    return [(c, ids[i:i + CHUNK]) for c, ids in by.items() for i in range(0, len(ids), CHUNK)]


def ledger(conn: Connection, pairs) -> dict[Pair, tuple[str, object, int]]:
    """(campaign, subscriber) -> (ledger state, done_at, variant) for the pairs that have a row."""
    dv = deliveries.c
    by_campaign: dict[int, set[int]] = {}
    for campaign, subscriber_id in pairs:
        by_campaign.setdefault(campaign, set()).add(subscriber_id)
    found: dict[Pair, tuple[str, object, int]] = {}
    for campaign, ids in by_campaign.items():
        for subscriber_id, state, done_at, variant in rows_with(
                conn, select(dv.subscriber_id, dv.state, dv.done_at, dv.variant).where(dv.campaign_id == campaign),
                dv.subscriber_id, ids):
            found[(campaign, subscriber_id)] = (state, done_at, variant)
    return found


def _domains(conn: Connection, ids) -> dict[int, str]:
    return {sid: domain or "" for sid, domain in rows_with(
        conn, select(subscribers.c.id, subscribers.c.email_domain), subscribers.c.id, ids)}


def record(conn: Connection, rows: list[dict], found: dict[Pair, tuple] | None = None) -> None:
    """Adds a batch of just-stored events (with their machine labels as stored)."""
    if not rows:
        return
    if found is None:
        found = ledger(conn, {(r["campaign_id"], r["subscriber_id"]) for r in rows})
    counts: Counter = Counter()
    seconds: Counter = Counter()
    hours: Counter = Counter()
    firsts: dict[tuple[int, int, str], dict] = {}
    for r in rows:
        pair = (r["campaign_id"], r["subscriber_id"])
        variant = found[pair][2] if pair in found else 0
        key = (r["campaign_id"], variant, r["kind"], bool(r["machine"]), r["read_class"] or "")
        counts[key] += 1
        seconds[key] += r["read_seconds"] or 0.0
        if r["kind"] in (OPEN, CLICK):
            hours[(r["campaign_id"], variant, periods.label(r["at"], "hour"), r["kind"], bool(r["machine"]))] += 1
            firsts.setdefault((*pair, r["kind"]), r)
            if not r["machine"]:
                firsts.setdefault((*pair, r["kind"] + "_h"), r)
    _add(conn, campaign_counts, ["campaign_id", "variant", "kind", "machine", "read_class"], ["events", "read_seconds"],
         [{"campaign_id": c, "variant": v, "kind": k, "machine": m, "read_class": rc, "events": n,
           "read_seconds": seconds[(c, v, k, m, rc)]} for (c, v, k, m, rc), n in counts.items()])
    _add(conn, campaign_hours, ["campaign_id", "variant", "hour", "kind", "machine"], ["events"],
         [{"campaign_id": c, "variant": v, "hour": h, "kind": k, "machine": m, "events": n}
          for (c, v, h, k, m), n in hours.items()])
    if not firsts:
        return
    fresh = insert_new(conn, campaign_people, ["campaign_id", "subscriber_id", "metric"], sorted(firsts))
    _count_people(conn, fresh, found, +1, firsts)


def _count_people(conn: Connection, changed: list[tuple[int, int, str]], found: dict, sign: int,
                  firsts: dict | None = None) -> None:
    if not changed:
        return
    domains = _domains(conn, {s for _, s, _ in changed})
    uniques: Counter = Counter()
    agents: Counter = Counter()
    for c, s, metric in changed:
        variant = found[(c, s)][2] if (c, s) in found else 0
        uniques[(c, variant, domains.get(s, ""), metric)] += sign
        if metric == OPEN and firsts is not None:
            agents[(c, variant, firsts[(c, s, OPEN)]["user_agent"] or "")] += sign
    _add(conn, campaign_uniques, ["campaign_id", "variant", "domain", "metric"], ["people"],
         [{"campaign_id": c, "variant": v, "domain": d, "metric": m, "people": n}
          for (c, v, d, m), n in uniques.items()])
    _add(conn, campaign_agents, ["campaign_id", "variant", "user_agent"], ["people"],
         [{"campaign_id": c, "variant": v, "user_agent": ua, "people": n} for (c, v, ua), n in agents.items()])


def relabel_clicks(conn: Connection, where, pairs: set[Pair]) -> None:
    """Before human clicks matching `where` become machine clicks: move them in the roll-up.
    After the UPDATE, `forget_human_clickers` drops people left without a human click."""
    ev = tracking_events.c
    found = ledger(conn, pairs)
    counts: Counter = Counter()
    hours: Counter = Counter()
    for campaign_id, subscriber_id, at in conn.execute(
            select(ev.campaign_id, ev.subscriber_id, ev.at).where(where)):
        variant = found[(campaign_id, subscriber_id)][2] if (campaign_id, subscriber_id) in found else 0
        hour = periods.label(at, "hour")
        for machine, sign in ((False, -1), (True, +1)):
            counts[(campaign_id, variant, machine)] += sign
            hours[(campaign_id, variant, hour, machine)] += sign
    _add(conn, campaign_counts, ["campaign_id", "variant", "kind", "machine", "read_class"], ["events", "read_seconds"],
         [{"campaign_id": c, "variant": v, "kind": CLICK, "machine": m, "read_class": "", "events": n,
           "read_seconds": 0.0} for (c, v, m), n in counts.items()])
    _add(conn, campaign_hours, ["campaign_id", "variant", "hour", "kind", "machine"], ["events"],
         [{"campaign_id": c, "variant": v, "hour": h, "kind": CLICK, "machine": m, "events": n}
          for (c, v, h, m), n in hours.items()])


def forget_human_clickers(conn: Connection, pairs: set[Pair]) -> None:
    """People of `pairs` with no human click left are no longer counted as human clickers."""
    ev, people = tracking_events.c, campaign_people.c
    still = set()
    for campaign, ids in per_campaign(pairs):
        still.update((campaign, s) for s in conn.execute(select(ev.subscriber_id).where(
            ev.campaign_id == campaign, ev.kind == CLICK, ev.machine.is_(False),
            ev.subscriber_id.in_(ids)).distinct()).scalars())
    gone = sorted(set(pairs) - {tuple(p) for p in still})
    if not gone:
        return
    removed = [tuple(r) for r in conn.execute(
        delete(campaign_people).where(people.metric == CLICK + "_h", or_(*(
            and_(people.campaign_id == c, people.subscriber_id == s) for c, s in gone)))
        .returning(people.campaign_id, people.subscriber_id, people.metric))]
    _count_people(conn, removed, ledger(conn, gone), -1)


def rebuild(conn: Connection) -> None:
    """Recompute every campaign roll-up table from all events (bulk loads, upgrades).

    Only split-test campaigns (ledger variants other than 0) need the ledger joined for the
    variant; every other campaign is grouped from the events alone (a join of every event with
    the ledger made this take minutes at 10 million events)."""
    for table in (campaign_counts, campaign_hours, campaign_people, campaign_uniques, campaign_agents):
        conn.execute(delete(table))
    dv, people = deliveries.c, campaign_people.c
    split = sorted(conn.execute(select(dv.campaign_id).where(dv.variant != 0).distinct()).scalars())
    for kind in (OPEN, CLICK):
        for metric, human in ((kind, None), (kind + "_h", tracking_events.c.machine.is_(False))):
            query = select(tracking_events.c.campaign_id, tracking_events.c.subscriber_id, literal(metric)) \
                .where(tracking_events.c.kind == kind).distinct()
            conn.execute(campaign_people.insert().from_select(
                ["campaign_id", "subscriber_id", "metric"], query if human is None else query.where(human)))
    _rebuild_part(conn, tracking_events, literal(0), campaign_people, literal(0),
                  tracking_events.c.campaign_id.not_in(split) if split else None,
                  people.campaign_id.not_in(split) if split else None)
    if split:
        on_ledger = and_(dv.campaign_id == tracking_events.c.campaign_id,
                         dv.subscriber_id == tracking_events.c.subscriber_id)
        on_person = and_(dv.campaign_id == people.campaign_id, dv.subscriber_id == people.subscriber_id)
        _rebuild_part(conn, tracking_events.outerjoin(deliveries, on_ledger), func.coalesce(dv.variant, 0),
                      campaign_people.outerjoin(deliveries, on_person), func.coalesce(dv.variant, 0),
                      tracking_events.c.campaign_id.in_(split), people.campaign_id.in_(split))


def _rebuild_part(conn: Connection, events, variant, persons, person_variant, only, only_people) -> None:
    """The roll-up rows of some campaigns: `events`/`persons` (possibly joined to the ledger)
    give `variant`/`person_variant`; `only`/`only_people` narrow them (None: all)."""
    ev, s, people = tracking_events.c, subscribers.c, campaign_people.c

    def narrowed(query, condition):
        return query if condition is None else query.where(condition)
    read_class = func.coalesce(ev.read_class, "")
    conn.execute(campaign_counts.insert().from_select(
        ["campaign_id", "variant", "kind", "machine", "read_class", "events", "read_seconds"],
        narrowed(select(ev.campaign_id, variant, ev.kind, ev.machine, read_class, func.count(),
                        func.coalesce(func.sum(ev.read_seconds), 0.0)).select_from(events), only)
        .group_by(ev.campaign_id, variant, ev.kind, ev.machine, read_class)))
    hour = periods.bucket(ev.at, "hour", conn.dialect.name)
    conn.execute(campaign_hours.insert().from_select(
        ["campaign_id", "variant", "hour", "kind", "machine", "events"],
        narrowed(select(ev.campaign_id, variant, hour, ev.kind, ev.machine, func.count()).select_from(events)
                 .where(ev.kind.in_((OPEN, CLICK))), only)
        .group_by(ev.campaign_id, variant, hour, ev.kind, ev.machine)))
    domain = func.coalesce(s.email_domain, "")
    conn.execute(campaign_uniques.insert().from_select(
        ["campaign_id", "variant", "domain", "metric", "people"],
        narrowed(select(people.campaign_id, person_variant, domain, people.metric, func.count())
                 .select_from(persons.outerjoin(subscribers, s.id == people.subscriber_id)), only_people)
        .group_by(people.campaign_id, person_variant, domain, people.metric)))
    first = narrowed(select(ev.campaign_id, ev.subscriber_id, func.min(ev.id).label("first_id"))
                     .where(ev.kind == OPEN), only).group_by(ev.campaign_id, ev.subscriber_id).subquery()
    agent = func.coalesce(ev.user_agent, "")
    firsts = events.join(first, ev.id == first.c.first_id)
    conn.execute(campaign_agents.insert().from_select(
        ["campaign_id", "variant", "user_agent", "people"],
        select(ev.campaign_id, variant, agent, func.count()).select_from(firsts)
        .group_by(ev.campaign_id, variant, agent)))
