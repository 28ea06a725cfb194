"""A message composed exactly as a campaign's sender composes it (sending.compose: links,
tracking image, List-Unsubscribe, Feedback-ID, MIME, DKIM with the domain's active keys) for
the sample subscriber, and what the compliance panel and the pre-send checks read from it:
the DKIM signatures verified against our DNS servers, the headers they cover, the HTML size.

The sample person (and campaign) have the largest id a signed link takes, 2**31 - 1, which no
installation reaches: its unsubscribe link is a real, signed link that changes nothing when it
is followed (the self-test of the one-click POST answers as for someone already gone).
"""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage

import dkim as dkimpy

from altkraft_onprem.config import Settings
from altkraft_onprem.delivery import dkimkeys
from altkraft_onprem.delivery.dnsquery import Dns, TempError
from altkraft_onprem.messages.preview import SAMPLE_SUBSCRIBER
from altkraft_onprem.sending.compose import Composer

SAMPLE_ID = 2**31 - 1


@dataclass
class Signature:
    domain: str             # d=
    selector: str           # s=
    algorithm: str          # a=
    signed: list[str]       # h=, lower case
    verified: str           # pass | fail | unknown (DNS did not answer)
    reason: str = ""


@dataclass
class Sample:
    raw: bytes
    message: EmailMessage
    html_bytes: int
    signatures: list[Signature] = field(default_factory=list)

    def header(self, name: str) -> str:
        return str(self.message.get(name) or "")

    def covered(self, name: str) -> bool:
        """Whether a signature that verifies covers the header field."""
        return any(s.verified == "pass" and name.lower() in s.signed for s in self.signatures)


def campaign_values(from_email: str, *, name: str = "Self-test", campaign_id: int = SAMPLE_ID,
                    from_name: str = "", reply_to: str | None = None,
                    list_ids: list[int] | None = None, track_clicks: bool = True,
                    track_opens: bool = True) -> dict:
    """What Composer reads of a campaign."""
    return {"id": campaign_id, "name": name, "from_email": from_email, "from_name": from_name,
            "reply_to": reply_to, "track_clicks": track_clicks, "track_opens": track_opens,
            "utm": {}, "link_utm": {}, "list_ids": list(list_ids or [])}


def compose(settings: Settings, campaign: dict, version: dict, resolver: Dns | None,
            list_names: dict[int, str] | None = None) -> Sample:
    """The message the sample subscriber would get, its signatures checked through
    `resolver` (None: not checked). Raises TemplateProblem or DeliveryError as a send would."""
    composer = Composer(settings, campaign, {**version, "id": version.get("id") or SAMPLE_ID},
                        list_names or {})
    person = {**SAMPLE_SUBSCRIBER, "id": SAMPLE_ID}
    out = composer.compose(person)
    parsed = email.message_from_bytes(out.data, policy=email.policy.default)
    html_bytes = sum(len(part.get_payload(decode=True) or b"") for part in parsed.walk()
                     if part.get_content_type() == "text/html")
    sample = Sample(out.data, parsed, html_bytes)
    if resolver is not None:
        sample.signatures = verify(out.data, resolver)
    return sample


def _txt_lookup(resolver: Dns):
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        records = [t for t in resolver.txt(name.decode().rstrip(".")) if "p=" in t]
        return records[0].encode() if records else None
    return lookup


def verify(raw: bytes, resolver: Dns) -> list[Signature]:
    """Each DKIM-Signature of the message verified by dkimpy (an independent verifier) with
    the public keys our DNS servers publish."""
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    found = []
    for index, value in enumerate(parsed.get_all("DKIM-Signature") or []):
        tags = dkimkeys.parse_tags(str(value))
        signature = Signature(tags.get("d", "").lower(), tags.get("s", ""), tags.get("a", ""),
                              [h.strip().lower() for h in tags.get("h", "").split(":") if h],
                              "fail")
        checker = dkimpy.DKIM(raw)
        try:
            ok = checker.verify(idx=index, dnsfunc=_txt_lookup(resolver))
        except TempError as exc:
            signature.verified, signature.reason = "unknown", f"DNS did not answer ({exc})"
        except dkimpy.DKIMException as exc:
            signature.reason = str(exc)
        else:
            signature.verified = "pass" if ok else "fail"
            if not ok:
                signature.reason = "the signature does not verify with the key published at " \
                    f"{dkimkeys.record_name(signature.domain, signature.selector)}"
        found.append(signature)
    return found
