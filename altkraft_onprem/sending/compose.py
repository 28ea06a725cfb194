"""A campaign's message for one subscriber: render, track, MIME, DKIM — all CPU, no I/O.

`Composer` is built once per campaign and sender process: the message version is compiled
once with every literal link replaced by a placeholder; per subscriber the placeholders
become signed click URLs (with the campaign's UTM marks kept server-side, in the link table
the click endpoint reads), the tracking image goes before </body>, the List-Unsubscribe
headers and the VERP Return-Path name the campaign and the subscriber, List-Id the list the
subscriber gets it through and Feedback-ID the campaign and the sender.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import Connection

from altkraft_onprem.audience import links as audience_links
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns import splittest
from altkraft_onprem.campaigns.models import link_marks, lists_label, unsubscribe_list, with_utm
from altkraft_onprem.delivery import dkim, identifiers, mime, sending_domains, verp
from altkraft_onprem.messages import data as external_data
from altkraft_onprem.messages.render import compile_version
from altkraft_onprem.messages.webview import ViewLinks
from altkraft_onprem.tracking import tokens

# Searched in the UTF-8 bytes: a regex over a non-ASCII str (UCS-2 inside) is several
# times slower, and the bytes are needed for MIME anyway.
_PLACEHOLDER = re.compile(rb"AKLNK(\d+)Q")
_BODY_END = re.compile(rb"</body\s*>", re.I)


@dataclass
class Outgoing:
    data: bytes
    message_id: str
    mail_from: str
    rcpt: str
    times: tuple[float, float, float]   # render, MIME, DKIM seconds
    eight_bit: bool = False             # needs MAIL FROM ... BODY=8BITMIME


class Composer:
    def __init__(self, settings, campaign: dict, version: dict, list_names: dict[int, str]):
        self.settings = settings
        self.campaign = campaign
        self.campaign_id = campaign["id"]
        self.version_id = version["id"]
        from_domain = campaign["from_email"].rpartition("@")[2].lower()
        # Click and open links on the From domain's tracking host when it has one.
        self.public_url = sending_domains.tracking_base(settings, from_domain)
        self.tracking_key = tokens.tracking_key(settings)
        self._tokens = tokens.Minter(settings, self.campaign_id, version["id"], base=self.public_url)
        # Signed unsubscribe/preference links: the audience serializers, built once.
        self._unsubscribe = audience_links.LinkSigner(settings, audience_links.SALT_UNSUBSCRIBE)
        self._preferences = audience_links.LinkSigner(settings, audience_links.SALT_PREFERENCES)
        self._public_base = audience_links._base(settings)
        self.track_clicks = bool(campaign["track_clicks"])
        self.track_opens = bool(campaign["track_opens"])
        utm, link_utm = campaign["utm"] or {}, campaign["link_utm"] or {}
        ident = (self.campaign_id, self.public_url, self.track_clicks, repr(utm), repr(link_utm))
        if self.track_clicks:
            prefix = f"{self.public_url}/t/c/AKLNK"
            rewriter = _Rewriter(lambda url, index: f"{prefix}{index}Q", ident)
        else:
            rewriter = _Rewriter(lambda url, index: with_utm(url, link_marks(utm, link_utm, index)),
                                 ident)
        self.message = compile_version(version, link_rewriter=rewriter)
        self.from_email = campaign["from_email"]
        self.from_name = campaign["from_name"] or ""
        self.reply_to = campaign["reply_to"] or None
        self.from_domain = from_domain
        self.bounce_domain = sending_domains.bounce_domain(settings, from_domain)
        self.keys = dkim.keys_for(settings, from_domain)
        lists = list(campaign["list_ids"] or [])
        self.unsubscribe_list = unsubscribe_list(lists)
        self._list_id_lines = {list_id: mime.list_id_line(list_names.get(list_id, ""),
                                                          identifiers.list_id(list_id, from_domain))
                               for list_id in lists}
        self._first_list = lists[0] if lists else None
        self.feedback_id = identifiers.feedback_id(
            self.campaign_id, settings["delivery.feedback_id_sender"] or from_domain, lists)
        self.list_context = {"name": lists_label(lists, list_names)}
        self.campaign_context = {"name": campaign["name"]}
        self._view = ViewLinks(settings, self.campaign_id, self.version_id)
        # External JSON for {{ data.… }}: a pasted document or a URL is loaded here, once per
        # sender; a per-subscriber URL template is fetched a batch at a time (prepare_batch).
        # A failure raises DataFetchError: the campaign pauses rather than going out
        # half-personalised.
        self._data_source = version.get("data_source") or None
        self._per_subscriber = bool(self._data_source) and \
            self._data_source.get("kind") == "per_subscriber"
        self._shared_data = {} if self._per_subscriber else \
            external_data.shared_data(settings, self._data_source)
        self._data_cache: dict = {}         # URL -> document, for the whole send
        self._batch_data: dict[int, dict] = {}

    def prepare_batch(self, people: dict[int, dict]) -> None:
        """Fetches the per-subscriber external data of a batch (concurrently, each URL once
        per send). Raises DataFetchError when any of it cannot be had."""
        if not self._per_subscriber:
            return
        contexts = {sid: {"subscriber": person, "list": self.list_context,
                          "campaign": self.campaign_context} for sid, person in people.items()}
        self._batch_data = external_data.per_subscriber_data(self.settings, self._data_source,
                                                             contexts, self._data_cache)

    def _with_click_tokens(self, subscriber_id: int, html: bytes, text: bytes) -> tuple[bytes, bytes]:
        """Placeholders -> this subscriber's click tokens (each distinct link's made once)."""
        html_parts = _PLACEHOLDER.split(html)
        text_parts = _PLACEHOLDER.split(text)
        found = self._tokens.click_tokens(subscriber_id, html_parts[1::2] + text_parts[1::2])
        html_parts[1::2] = [found[index] for index in html_parts[1::2]]
        text_parts[1::2] = [found[index] for index in text_parts[1::2]]
        return b"".join(html_parts), b"".join(text_parts)

    def compose(self, subscriber: dict, eight_bit: bool = False, list_id: int | None = None) -> Outgoing:
        """Raises TemplateProblem or DeliveryError for this subscriber's message.
        `eight_bit`: the relay offers 8BITMIME (bodies then skip quoted-printable); `list_id`:
        the campaign's list the subscriber gets it through (`campaigns.recipients`; default
        the first)."""
        started = time.perf_counter()
        sid = subscriber["id"]
        unsubscribe = (f"{self._public_base}/p/u/"
                       f"{self._unsubscribe.dumps([sid, self.unsubscribe_list, self.campaign_id])}")
        context = {
            "subscriber": subscriber, "list": self.list_context,
            "campaign": dict(self.campaign_context), "unsubscribe_url": unsubscribe,
            "preferences_url": f"{self._public_base}/p/preferences/{self._preferences.dumps([sid])}",
            "view_in_browser_url": self._view.url(sid),
            "data": self._batch_data.get(sid, {}) if self._per_subscriber else self._shared_data,
            # What made a workflow send this (its send node's ledger rows carry it).
            "event": subscriber.get("event") or {},
        }
        rendered = self.message.render(context)
        html, text = rendered.html.encode("utf-8"), rendered.text.encode("utf-8")
        if self.track_clicks:
            html, text = self._with_click_tokens(sid, html, text)
        if html and (self.track_clicks or self.track_opens):
            # The hidden honeypot link (whoever fetches it is a machine) and the pixels.
            tail = self._tokens.tail_html(sid, honeypot=self.track_clicks,
                                          pixels=self.track_opens).encode("utf-8")
            end = _last_body_end(html)
            html = html + tail if end < 0 else html[:end] + tail + html[end:]
        mailto = "mailto:" + verp.encode(self.tracking_key, self.bounce_domain, self.campaign_id,
                                         sid, verp.UNSUBSCRIBE_PREFIX) + "?subject=unsubscribe"
        return self._package(
            subscriber, rendered.subject, html, text, started, eight_bit=eight_bit,
            reply_to=self.reply_to,
            headers={"List-Unsubscribe": f"<{unsubscribe}>, <{mailto}>",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                     "Feedback-ID": self.feedback_id},
            list_id=self._list_id_lines.get(list_id, self._list_id_lines.get(self._first_list)))

    def _package(self, subscriber: dict, subject: str, html: bytes, text: bytes, started: float,
                 *, eight_bit: bool, reply_to: str | None, headers: dict[str, str],
                 list_id: bytes | None = None) -> Outgoing:
        """The rendered message as MIME, DKIM-signed, with the VERP envelope sender."""
        rendered_at = time.perf_counter()
        sid = subscriber["id"]
        message = mime.build(
            from_email=self.from_email, from_name=self.from_name, to_email=subscriber["email"],
            to_name=" ".join(p for p in (subscriber.get("first_name"), subscriber.get("last_name")) if p),
            subject=subject, html=html, text=text, reply_to=reply_to, headers=headers,
            eight_bit=eight_bit, list_id=list_id)
        built_at = time.perf_counter()
        message.extra = dkim.signature_lines(self.keys, message.headers, message.body)
        data = message.as_bytes()
        signed_at = time.perf_counter()
        mail_from = verp.encode(self.tracking_key, self.bounce_domain, self.campaign_id, sid)
        return Outgoing(data, message.message_id, mail_from, subscriber["email"],
                        (rendered_at - started, built_at - rendered_at, signed_at - built_at),
                        message.eight_bit)


def _last_body_end(html: bytes) -> int:
    """Where the last </body> starts (-1: none). It is near the end: the document's last
    kilobyte is searched first (a tag straddling its start means a full search)."""
    tail_start = max(len(html) - 1024, 0)
    ends = list(_BODY_END.finditer(html, tail_start)) or \
        (list(_BODY_END.finditer(html)) if tail_start else [])
    return ends[-1].start() if ends else -1


class _Rewriter:
    """A link rewriter that compares equal per campaign, so the compile cache reuses it."""

    def __init__(self, fn, ident: tuple):
        self.fn, self.ident = fn, ident

    def __call__(self, url: str, index: int) -> str:
        return self.fn(url, index)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Rewriter) and other.ident == self.ident

    def __hash__(self) -> int:
        return hash(self.ident)


class TransactionalComposer(Composer):
    """The message of a transactional carrier (campaigns/transactional.py): each ledger row is
    its own recipient — in the audience or not (id 0) — with the request's `data` and extra
    headers. Not bulk mail: no tracking, no List-Unsubscribe or List-Id, no web copy."""

    per_row = True

    def prepare_batch(self, people: dict[int, dict]) -> None:
        """The request carries the data: nothing is fetched per recipient."""

    def compose(self, subscriber: dict, eight_bit: bool = False, list_id: int | None = None) -> Outgoing:
        started = time.perf_counter()
        request = subscriber.get("transactional") or {}
        person = {k: v for k, v in subscriber.items() if k != "transactional"}
        sid = person["id"]
        links = {"unsubscribe_url": "", "preferences_url": ""}
        if sid:       # a person in the audience may still leave from here
            links = {"unsubscribe_url": f"{self._public_base}/p/u/"
                                        f"{self._unsubscribe.dumps([sid, None, self.campaign_id])}",
                     "preferences_url": f"{self._public_base}/p/preferences/"
                                        f"{self._preferences.dumps([sid])}"}
        rendered = self.message.render({
            "subscriber": person, "list": self.list_context, "campaign": dict(self.campaign_context),
            **links, "view_in_browser_url": "", "event": {},
            "data": request.get("data") or ({} if self._per_subscriber else self._shared_data)})
        headers = dict(request.get("headers") or {})
        reply_to = headers.pop("Reply-To", None) or self.reply_to
        headers["Feedback-ID"] = self.feedback_id
        return self._package(person, rendered.subject, rendered.html.encode("utf-8"),
                             rendered.text.encode("utf-8"), started, eight_bit=eight_bit,
                             reply_to=reply_to, headers=headers)


def composers(conn: Connection, settings, campaign_id: int) -> dict:
    """{ledger variant: Composer}: one compiled message per variant (just 0 without a test)."""
    campaign = campaigns.get_campaign(conn, campaign_id)
    names = campaigns.list_names(conn, campaign)
    kind = TransactionalComposer if campaign["transactional"] else Composer
    return {variant: kind(settings, values, version, names)
            for variant, (values, version) in splittest.sending_parts(conn, campaign).items()}
