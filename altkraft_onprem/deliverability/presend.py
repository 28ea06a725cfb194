"""Pre-send checks of a message, on the editor and before a campaign starts: a sample composed
exactly as the campaign's senders compose it (samples.py) is scored by SpamAssassin, its DKIM
signatures verified against our DNS servers, its size held against Gmail's clipping line, its
parts, images and unsubscribe link looked at; its link domains are looked up in the domain
blocklists (blocklists.py).

Findings warn. One blocks a campaign's start only where an administrator drew the line:
deliverability.presend_block_spam_score, or its code in deliverability.presend_block_codes.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Connection

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns import splittest
from altkraft_onprem.config import Settings
from altkraft_onprem.delivery import dnscheck
from altkraft_onprem.delivery.errors import DeliveryError
from altkraft_onprem.errors import ServiceError
from altkraft_onprem.messages import service as messages
from altkraft_onprem.messages.render import TemplateProblem, compile_version

from . import blocklists, checks, samples, spamscore

SEVERITIES = ("info", "warning", "block")
CODES = ("spam_score", "spam_score_unavailable", "link_domain_listed", "link_domains_unchecked",
         "no_text_part", "gmail_clipping", "image_text_ratio", "dkim_not_verified",
         "dkim_unchecked", "no_unsubscribe_link", "not_composed")
# Gmail shows "[Message clipped]" and hides the rest (and the tracking image) past 102 KB of HTML.
GMAIL_CLIP_BYTES = 102 * 1024
# Less text than this per image reads as an image-only mail to filters (SpamAssassin's
# HTML_IMAGE_ONLY_* and HTML_IMAGE_RATIO_* rules fire well below it).
TEXT_PER_IMAGE = 400
_IMG = re.compile(rb"<img\b[^>]*>", re.I)
_PIXEL = re.compile(rb"width=[\"']?1[\"'\s>].*height=[\"']?1[\"'\s>]|height=[\"']?1[\"'\s>].*width=[\"']?1[\"'\s>]",
                    re.I | re.S)
_URL = re.compile(r"\S+://\S+")


@dataclass
class Finding:
    code: str
    severity: str       # info | warning | block
    detail: str

    def as_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "detail": self.detail}


def link_domains(version: dict) -> list[str]:
    """The registrable domains the message's literal links point at."""
    found = []
    for _index, url in compile_version(version).links:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        if host and not host.replace(".", "").isdigit() and ":" not in host:
            found.append(dnscheck.org_domain(host))
    return list(dict.fromkeys(found))


def _link_findings(settings: Settings, version: dict) -> list[Finding]:
    names = link_domains(version)
    zones = settings["deliverability.domain_blocklists"]
    if not names or not zones:
        return []
    resolver = checks.resolver(settings)
    with ThreadPoolExecutor(max_workers=min(8, len(names) * len(zones))) as pool:
        found = list(pool.map(lambda pair: blocklists.look_up(resolver, *pair),
                              [(n, z) for n in names for z in zones]))
    listed = [x for x in found if x.status == "fail"]
    unknown = [x for x in found if x.status == "unknown"]
    out = [Finding("link_domain_listed", "warning", x.detail) for x in listed]
    if unknown:
        out.append(Finding("link_domains_unchecked", "info", "; ".join(
            dict.fromkeys(x.detail for x in unknown))))
    return out


def _spam_findings(settings: Settings, sample: samples.Sample) -> list[Finding]:
    try:
        found = spamscore.score(settings, sample.raw)
    except spamscore.Unavailable as exc:
        return [Finding("spam_score_unavailable", "info", str(exc))]
    rules = ", ".join(f"{name} {points:+.1f}" for points, name, _ in found.top())
    said = f"SpamAssassin: {found.score:.1f} points ({found.threshold:.1f} is spam)" + \
        (f"; most from {rules}" if rules else "")
    limit = settings["deliverability.presend_block_spam_score"]
    if limit and found.score >= limit:
        return [Finding("spam_score", "block", f"{said}; the limit set here is {limit:g}")]
    return [Finding("spam_score", "warning" if found.score >= found.threshold / 2 else "info", said)]


def _content_findings(sample: samples.Sample) -> list[Finding]:
    out = []
    text = sample.message.get_body(("plain",))
    text_content = text.get_content() if text is not None else ""
    if not text_content.strip():
        out.append(Finding("no_text_part", "warning", "the message has no plain-text part: "
                           "filters score HTML-only mail higher and some readers show nothing"))
    if sample.html_bytes > GMAIL_CLIP_BYTES:
        out.append(Finding("gmail_clipping", "warning", f"the HTML part is {sample.html_bytes / 1024:.0f} KB as "
                           f"sent (with tracking links): Gmail clips past 102 KB, hiding the rest "
                           "and the unsubscribe link"))
    html = sample.message.get_body(("html",))
    raw_html = html.get_content().encode() if html is not None else b""
    images = [m for m in _IMG.findall(raw_html) if not _PIXEL.search(m)]
    chars = len(_URL.sub("", text_content).strip())
    if images and chars < TEXT_PER_IMAGE * len(images):
        out.append(Finding("image_text_ratio", "warning",
                           f"{len(images)} image{'s' if len(images) > 1 else ''} and {chars} "
                           f"characters of text ({chars // len(images)} per image): below "
                           f"{TEXT_PER_IMAGE} per image filters read it as an image mail"))
    # The body only: the List-Unsubscribe header always has the link.
    body = raw_html.decode("utf-8", "replace") + text_content
    if "/p/u/" not in body and "/p/preferences/" not in body:
        out.append(Finding("no_unsubscribe_link", "warning",
                           "the message has no unsubscribe link in its body ({{ unsubscribe_url }} "
                           "or {{ preferences_url }}); the List-Unsubscribe header is there, but "
                           "recipients who do not see it press \"spam\""))
    return out


def _dkim_findings(sample: samples.Sample, from_domain: str) -> list[Finding]:
    if not sample.signatures:
        return [Finding("dkim_not_verified", "warning", f"the message is not DKIM-signed: "
                        f"{from_domain} has no active key (Settings -> Sending domains)")]
    said = "; ".join(f"d={s.domain} s={s.selector}: {s.verified}"
                     + (f" ({s.reason})" if s.reason else "") for s in sample.signatures)
    if any(s.verified == "pass" and dnscheck.aligned(s.domain, from_domain, "r")
           for s in sample.signatures):
        return []
    if any(s.verified == "unknown" for s in sample.signatures):
        return [Finding("dkim_unchecked", "info", f"could not check the signature: {said}")]
    return [Finding("dkim_not_verified", "warning", f"no signature of the composed message "
                    f"verifies aligned with {from_domain}: {said}")]


def check_version(settings: Settings, version: dict, from_email: str, *,
                  list_ids: list[int] | None = None, list_names: dict[int, str] | None = None,
                  track_clicks: bool = True, track_opens: bool = True) -> list[Finding]:
    """Every finding of one message version sent from `from_email`."""
    from_domain = from_email.rpartition("@")[2].lower()
    resolver = checks.resolver(settings)
    try:
        sample = samples.compose(settings, samples.campaign_values(
            from_email, list_ids=list_ids, track_clicks=track_clicks, track_opens=track_opens),
            version, resolver, list_names)
    except (TemplateProblem, DeliveryError, ServiceError) as exc:
        return [Finding("not_composed", "warning", f"the message could not be composed for "
                        f"the checks: {exc}")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        spam = pool.submit(_spam_findings, settings, sample)
        links = pool.submit(_link_findings, settings, version)
        found = [*spam.result(), *links.result(), *_content_findings(sample),
                 *_dkim_findings(sample, from_domain)]
    blocking = set(settings["deliverability.presend_block_codes"])
    for item in found:
        if item.code in blocking and item.severity == "warning":
            item.severity = "block"
    return _most_severe_first(found)


def _most_severe_first(found: list[Finding]) -> list[Finding]:
    order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(found, key=lambda f: (order[f.severity], CODES.index(f.code)))


def default_from(settings: Settings) -> str:
    """The From address a message is checked with when no campaign names one."""
    return settings["audience.from_email"] or "news@example.com"


def message_version(conn: Connection, message_id: int, version: int | None = None) -> dict:
    """The version to check (read in `conn`; the checks run after, outside the transaction)."""
    return dict(messages.get_version(conn, message_id, version))


def blocked(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "block"]


def gate_wanted(settings: Settings) -> bool:
    """Whether a campaign's start runs the checks at all: only when something may block."""
    return bool(settings["deliverability.presend_block_spam_score"]
                or settings["deliverability.presend_block_codes"])


def campaign_message(conn: Connection, campaign_id: int) -> dict:
    """What a campaign's checks read, in `conn` (they run after, outside the transaction):
    {"campaign", "version" (the one it sends), "variants" (a split test's [(letter, version)],
    else []), "list_names"}."""
    campaign = campaigns.get_campaign(conn, campaign_id)
    version = (messages.get_version_by_id(conn, campaign["version_id"]) if campaign["version_id"]
               else messages.get_version(conn, campaign["message_id"]))
    return {"campaign": campaign, "version": dict(version),
            "variants": splittest.variant_versions(conn, campaign),
            "list_names": campaigns.list_names(conn, campaign)}


def check_campaign(settings: Settings, found: dict) -> list[Finding]:
    """Every finding of a campaign's message (campaign_message) as the campaign sends it:
    from its From address, to its lists, with its tracking. A split test's variants are each
    checked, and each finding names its variant."""
    campaign = found["campaign"]
    findings = []
    for letter, version in found["variants"] or [("", found["version"])]:
        for finding in check_version(settings, version, campaign["from_email"],
                                     list_ids=campaign["list_ids"], list_names=found["list_names"],
                                     track_clicks=bool(campaign["track_clicks"]),
                                     track_opens=bool(campaign["track_opens"])):
            if letter:
                finding.detail = f"variant {letter}: {finding.detail}"
            findings.append(finding)
    return _most_severe_first(findings)


def start_blockers(engine, settings: Settings, campaign_id: int) -> list[str]:
    """What stops the campaign's start (extensions.CAMPAIGN_START_CHECKS): its message's
    blocking findings, sent from its From address — checked only when a line is drawn."""
    if not gate_wanted(settings):
        return []
    with db.read(engine) as conn:
        found = campaign_message(conn, campaign_id)
    return [f"{f.code}: {f.detail}" for f in blocked(check_campaign(settings, found))]
