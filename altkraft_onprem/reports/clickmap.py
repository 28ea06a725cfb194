"""The clickmap: the message version as sent, with a badge on every link (share of recipients
who clicked it, clicks), one view per version the campaign sent.

Figures are human (machine-labelled clicks are counted apart). The share's denominator is the
number of recipients the version was delivered to (the ledger, for the campaign's pinned
version; otherwise the recipients seen with events of that version).

A split test's variants are views too (`variant`): the variant's message version, with the
figures and denominator of the recipients who got that variant (several variants may share
one version and differ in subject or From name only).
"""
from __future__ import annotations

import html as htmllib
import re
from typing import Any

from sqlalchemy import Connection, case, func, select

from altkraft_onprem.campaigns import splittest
from altkraft_onprem.campaigns.models import deliveries, lists_label, variant_letter
from altkraft_onprem.campaigns.service import list_names
from altkraft_onprem.errors import NotFound, ServiceError
from altkraft_onprem.messages.models import message_versions
from altkraft_onprem.messages.placeholder import readable, render_for_placeholder
from altkraft_onprem.messages.render import TemplateProblem
from altkraft_onprem.messages.service import get_version_by_id, version_links
from altkraft_onprem.tracking.models import CLICK, HUMAN, tracking_events

from .campaign import _ratio, campaign_row, in_variant

ev = tracking_events.c
_MARK = "https://ak-clickmap.invalid/"
_ANCHOR = re.compile(r'<a\b[^>]*?href="' + re.escape(_MARK) + r'(\d+)"[^>]*>', re.I | re.S)


def _mark_link(url: str, index: int) -> str:
    """Links of the clickmap's copy point at a mark the badges replace (one compiled copy per
    version: the same function every time keeps the compile cache's key)."""
    return f"{_MARK}{index}"


def split_variants(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    """A started split test's variants with their pinned versions ([] without one)."""
    test = splittest.get(conn, campaign_id)
    if test is None or test["state"] == "pending":
        return []
    numbers = dict(conn.execute(select(message_versions.c.id, message_versions.c.version).where(
        message_versions.c.id.in_([v["version_id"] for v in test["variants"]]))).all())
    subjects = dict(conn.execute(select(message_versions.c.id, message_versions.c.subject).where(
        message_versions.c.id.in_(list(numbers)))).all())
    return [{"variant": n, "letter": variant_letter(n), "version_id": v["version_id"],
             "version": numbers.get(v["version_id"]), "winner": test["winner"] == n,
             "subject": v["subject"] or subjects.get(v["version_id"], "")}
            for n, v in enumerate(test["variants"], start=1)]


def versions(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    """Every version the campaign sent (the pinned one, the split-test variants' ones, plus
    any seen in its events)."""
    campaign = campaign_row(conn, campaign_id)
    ids = {v for (v,) in conn.execute(select(ev.version_id).where(ev.campaign_id == campaign_id).distinct())}
    if campaign.get("version_id"):
        ids.add(campaign["version_id"])
    ids.update(v["version_id"] for v in split_variants(conn, campaign_id))
    if not ids:
        return []
    rows = conn.execute(select(message_versions.c.id, message_versions.c.version, message_versions.c.subject)
                        .where(message_versions.c.id.in_(sorted(ids))).order_by(message_versions.c.version))
    return [{"id": r.id, "version": r.version, "subject": r.subject} for r in rows]


def _recipients(conn: Connection, campaign: dict, version_id: int, variant: int | None = None) -> int:
    if variant is not None:
        return conn.execute(select(func.count()).where(
            deliveries.c.campaign_id == campaign["id"], deliveries.c.variant == variant,
            deliveries.c.state == "sent")).scalar() or 0
    if campaign.get("version_id") == version_id:
        return conn.execute(select(func.count()).where(
            deliveries.c.campaign_id == campaign["id"], deliveries.c.state == "sent")).scalar() or 0
    return conn.execute(select(func.count(func.distinct(ev.subscriber_id))).where(
        ev.campaign_id == campaign["id"], ev.version_id == version_id)).scalar() or 0


def _pick(conn: Connection, campaign_id: int, version: int | None,
          variant: int | None = None) -> tuple[dict, list[dict], dict]:
    campaign = campaign_row(conn, campaign_id)
    sent = versions(conn, campaign_id)
    if not sent:
        raise NotFound("this campaign has not sent any message version yet")
    if variant is not None:
        found = next((v for v in split_variants(conn, campaign_id) if v["variant"] == variant), None)
        if found is None:
            raise ServiceError("the campaign has no split-test variant %(variant)s", "variant", variant=variant)
        chosen = next(v for v in sent if v["id"] == found["version_id"])
    elif version is None:
        chosen = next((v for v in sent if v["id"] == campaign.get("version_id")), sent[-1])
    else:
        chosen = next((v for v in sent if v["version"] == version), None)
        if chosen is None:
            raise ServiceError("the campaign did not send version %(version)s; it sent %(sent)s",
                               "version", version=version,
                               sent=", ".join(str(v["version"]) for v in sent))
    return campaign, sent, chosen


def clickmap(conn: Connection, campaign_id: int, version: int | None = None,
             variant: int | None = None) -> dict[str, Any]:
    """Per link of one version (or split-test variant): url, unique (human) clickers, clicks,
    percent of recipients."""
    campaign, sent, chosen = _pick(conn, campaign_id, version, variant)
    recipients = _recipients(conn, campaign, chosen["id"], variant)
    human = case((HUMAN, 1), else_=0)
    rows = conn.execute(
        select(ev.link_index, func.count(func.distinct(case((HUMAN, ev.subscriber_id)))),
               func.sum(human), func.count())
        .where(ev.campaign_id == campaign_id, ev.version_id == chosen["id"], ev.kind == CLICK,
               in_variant(campaign_id, variant))
        .group_by(ev.link_index)).all()
    stats = {index: (unique, int(clicks or 0), total) for index, unique, clicks, total in rows}
    links = []
    for index, url in version_links(conn, chosen["id"]):
        unique, clicks, total = stats.get(index, (0, 0, 0))
        links.append({"index": index, "url": url, "unique_clicks": unique, "clicks": clicks,
                      "machine_clicks": total - clicks, "percent": _ratio(unique, recipients)})
    return {"campaign_id": campaign_id, "version": chosen["version"], "version_id": chosen["id"],
            "recipients": recipients, "versions": sent, "links": links, "variant": variant,
            "variants": split_variants(conn, campaign_id)}


def annotated_html(conn: Connection, campaign_id: int, version: int | None = None,
                   variant: int | None = None, lang: str = "en") -> str:
    """The version's HTML as the campaign rendered it (its list, its name) for a placeholder
    recipient whose every personal variable shows its name, a badge before every link."""
    data = clickmap(conn, campaign_id, version, variant)
    campaign = campaign_row(conn, campaign_id)
    try:
        rendered = render_for_placeholder(
            get_version_by_id(conn, data["version_id"]), campaign_name=campaign["name"],
            list_name=lists_label(campaign["list_ids"], list_names(conn, campaign)),
            link_rewriter=_mark_link)
    except TemplateProblem as exc:
        return f"<p>{htmllib.escape(str(exc))}</p>"
    by_index = {link["index"]: link for link in data["links"]}

    def badge(match: re.Match) -> str:
        link = by_index.get(int(match.group(1)))
        tag = match.group(0).replace(_MARK + match.group(1), htmllib.escape(link["url"] if link else "#"))
        if link is None:
            return tag
        title = htmllib.escape(f"{link['url']}: {link['unique_clicks']} recipients, {link['clicks']} clicks")
        return (f'<span class="ak-badge" data-link="{link["index"]}" title="{title}" style="display:inline-block;'
                f'font:bold 11px/1.4 sans-serif;color:#fff;background:#b33a0c;border-radius:9px;'
                f'padding:0 6px;margin:0 3px;vertical-align:middle">{link["percent"]:.1f}% · {link["clicks"]}'
                f'</span>{tag}')
    return readable(_ANCHOR.sub(badge, rendered.html), lang)
