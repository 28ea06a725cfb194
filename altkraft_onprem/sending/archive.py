"""The public archive: /archive/SLUG lists the finished campaigns of a list marked `archive`,
newest first, /archive/SLUG/feed.atom is the same as an Atom feed, and each links to its
archived copy /archive/SLUG/TOKEN (messages/webview.py signs the token).

A copy is the version the campaign sent, rendered for a placeholder recipient (personal values
show as "[subscriber.first_name]", messages/placeholder.py): literal links as written — no
click tracking, no tracking image — and the recipient's own links (unsubscribe, preferences,
web copy) taken out. It is served with the view-in-browser page's sandbox CSP. An unknown
slug, a forged token, or a campaign no longer archived (or not of that list) is a plain 404.
"""
from __future__ import annotations

import re
from html import escape
from xml.sax.saxutils import escape as xml_escape

from flask import Blueprint, Response, abort, g, render_template
from flask_babel import get_locale
from sqlalchemy import Connection

from altkraft_onprem import db
from altkraft_onprem.access.policy import PUBLIC, requires
from altkraft_onprem.audience import lists
from altkraft_onprem.audience.links import LinkError
from altkraft_onprem.campaigns import archive
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.models import lists_label
from altkraft_onprem.config import current_settings
from altkraft_onprem.messages import webview
from altkraft_onprem.messages.placeholder import readable, render_for_placeholder
from altkraft_onprem.messages.render import TemplateProblem

from .webview import sandboxed

blueprint = Blueprint("archive", __name__)

# The placeholder recipient's own links render as this, then go: a link to it is removed
# with its text, any other use of it becomes "#".
_OWN = "https://own-link.invalid/"
_OWN_ANCHOR = re.compile(r"<a\b[^>]*\bhref\s*=\s*([\"'])" + re.escape(_OWN) + r"\1[^>]*>.*?</a\s*>",
                         re.I | re.S)
_SLUG = re.compile(r"^[a-z0-9-]{1,64}$")
# Nothing personal in these pages: proxies may keep them a while.
CACHE = "public, max-age=300"


def _list_or_404(conn: Connection, slug: str) -> dict:
    found = lists.by_archive_slug(conn, slug) if _SLUG.match(slug) else None
    if found is None:
        abort(404)
    return found


def _archive(slug: str) -> tuple[dict, list[dict], str]:
    """(the list, its archived campaigns with their copies' URLs, the archive's URL); 404 when
    no list has this archive address."""
    settings = current_settings()
    base = settings["server.public_url"].rstrip("/")
    with db.read(db.get_engine()) as conn:
        found = _list_or_404(conn, slug)
        entries = [{**c, "url": f"{base}/archive/{slug}/"
                               f"{webview.archive_token(settings, c['id'], c['version_id'])}"}
                   for c in archive.published(conn, found["id"])]
    return found, entries, f"{base}/archive/{slug}"


@blueprint.route("/archive/<slug>")
@requires(PUBLIC)
def index(slug: str):
    found, entries, page = _archive(slug)
    return in_readers_language(Response(render_template(
        "archive/index.html", lst=found, entries=entries, feed_url=f"{page}/feed.atom")))


@blueprint.route("/archive/<slug>/feed.atom")
@requires(PUBLIC)
def feed(slug: str):
    found, entries, page = _archive(slug)
    updated = max((e["finished_at"] for e in entries), default=None)
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<feed xmlns="http://www.w3.org/2005/Atom">',
             f"<title>{xml_escape(found['name'])}</title>",
             f"<id>{xml_escape(page)}</id>",
             f'<link rel="alternate" type="text/html" href="{xml_escape(page)}"/>',
             f'<link rel="self" type="application/atom+xml" href="{xml_escape(page)}/feed.atom"/>',
             f"<updated>{_stamp(updated)}</updated>"]
    for entry in entries:
        lines += ["<entry>", f"<title>{xml_escape(entry['name'])}</title>",
                  f"<id>{xml_escape(entry['url'])}</id>",
                  f'<link rel="alternate" type="text/html" href="{xml_escape(entry["url"])}"/>',
                  f"<updated>{_stamp(entry['finished_at'])}</updated>", "</entry>"]
    lines.append("</feed>")
    response = Response("\n".join(lines) + "\n", mimetype="application/atom+xml")
    response.headers["Cache-Control"] = CACHE
    return response


def _stamp(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else "1970-01-01T00:00:00Z"


@blueprint.route("/archive/<slug>/<token>")
@requires(PUBLIC)
def copy(slug: str, token: str):
    settings = current_settings()
    try:
        campaign_id, version_id = webview.read_archive_token(settings, token)
    except LinkError:
        abort(404)
    with db.read(db.get_engine()) as conn:
        found = _list_or_404(conn, slug)
        campaign = archive.published_one(conn, found["id"], campaign_id)
        if campaign is None or campaign["version_id"] != version_id:
            abort(404)
        html = archived_copy(conn, campaign)
    if html is None:
        abort(404)
    return in_readers_language(sandboxed(readable(html, str(get_locale())), CACHE))


def in_readers_language(response: Response) -> Response:
    """A page whose text (or lang) is in the reader's language, chosen from Accept-Language:
    shared caches keep a copy per language. A signed-in reader's page is in their own
    language and shows their menu: no shared cache may keep it."""
    if g.get("actor") is not None:
        response.headers["Cache-Control"] = "private, no-cache"
    else:
        response.headers["Cache-Control"] = CACHE
        response.vary.add("Accept-Language")
    return response


def archived_copy(conn: Connection, campaign: dict) -> str | None:
    """The campaign's message as the archive shows it; None when even a placeholder recipient
    cannot be rendered (a template doing arithmetic on a personal value, say)."""
    version = archive.sent_version(conn, campaign)
    names = campaigns.list_names(conn, campaign)
    try:
        rendered = render_for_placeholder(version, list_name=lists_label(campaign["list_ids"], names),
                                          campaign_name=campaign["name"], own_links=_OWN)
    except TemplateProblem:
        return None
    if not rendered.html:
        return f"<!doctype html><meta charset=utf-8><pre>{escape(rendered.text.replace(_OWN, '#'))}</pre>"
    return _OWN_ANCHOR.sub("", rendered.html).replace(_OWN, "#")
