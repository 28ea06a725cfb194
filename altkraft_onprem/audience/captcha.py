"""The robot check of the public subscription forms, and the address checks made at submit.

`public.captcha` chooses the check:
- "pow" (default): a self-hosted proof of work (ALTCHA, PoW v2 through the `altcha` library;
  the `altcha` web component solves it in the browser). The challenge is signed with a key
  derived from the app's secret key, expires after `public.captcha_expire_minutes`, and a
  solved challenge is accepted once: its signature is claimed in app_state until it expires.
- "hcaptcha", "turnstile", "smartcaptcha": the provider's widget; the token is checked at the
  provider's siteverify URL (through http_guard). A provider that does not answer refuses the
  sign-up: we cannot tell a person from a robot then.
- "off": none (the honeypot and the per-address limit still apply).

The address checks: a domain on the disposable-domain list (the `disposable-email-domains`
package) is refused; a domain that cannot receive email (no MX and no address, a null MX, or
no such domain) is refused; a DNS server that does not answer is "could not check": accepted.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import altcha
from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS

from altkraft_onprem import db, http_guard
from altkraft_onprem.access.setup import claim_state, drop_states_below
from altkraft_onprem.config import Settings
from altkraft_onprem.delivery.dnsquery import Dns, TempError
from altkraft_onprem.errors import ServiceError

log = logging.getLogger(__name__)

ALGORITHM = "PBKDF2/SHA-256"
# PBKDF2 iterations per attempt; the attempts are public.captcha_max_number at most.
COST = 50
FIELD = "altcha"                    # the form field the widget fills
STATE_PREFIX = "captcha:"           # app_state keys of used challenges
MX_TIMEOUT = 3.0


@dataclass(frozen=True)
class Provider:
    field: str                      # the form field its widget fills
    verify_url: str
    script: str
    widget_class: str
    origins: tuple[str, ...]        # for the page's Content-Security-Policy
    token_name: str = "response"    # the token's name in the verify request


PROVIDERS = {
    "hcaptcha": Provider("h-captcha-response", "https://api.hcaptcha.com/siteverify",
                         "https://js.hcaptcha.com/1/api.js", "h-captcha",
                         ("https://hcaptcha.com", "https://*.hcaptcha.com")),
    "turnstile": Provider("cf-turnstile-response",
                          "https://challenges.cloudflare.com/turnstile/v0/siteverify",
                          "https://challenges.cloudflare.com/turnstile/v0/api.js", "cf-turnstile",
                          ("https://challenges.cloudflare.com",)),
    "smartcaptcha": Provider("smart-token", "https://smartcaptcha.yandexcloud.net/validate",
                             "https://smartcaptcha.yandexcloud.net/captcha.js", "smart-captcha",
                             ("https://smartcaptcha.yandexcloud.net",), token_name="token"),
}


# The refusals (each message a literal, for the translation catalogue).
def _missing(field: str) -> ServiceError:
    return ServiceError("Please complete the robot check before subscribing (it needs "
                        "JavaScript in your browser).", field)


def _expired(field: str) -> ServiceError:
    return ServiceError("The robot check has expired. Please try again.", field)


def _invalid(field: str) -> ServiceError:
    return ServiceError("The robot check was not accepted. Please try again.", field)


def _unverified(field: str) -> ServiceError:
    return ServiceError("The robot check could not be verified right now. Please try again "
                        "later.", field)


def _key(secret_key: bytes, purpose: bytes) -> str:
    return hmac.new(secret_key, b"altkraft captcha " + purpose, hashlib.sha256).hexdigest()


def new_challenge(settings: Settings, secret_key: bytes) -> dict:
    """A signed proof-of-work challenge for the widget (JSON). The counter the browser must find
    is drawn from the upper half of public.captcha_max_number."""
    top = settings["public.captcha_max_number"]
    counter = top // 2 + secrets.randbelow(top - top // 2 + 1)
    expires = int(time.time()) + settings["public.captcha_expire_minutes"] * 60
    challenge = altcha.create_challenge(
        algorithm=ALGORITHM, cost=COST, counter=counter, expires_at=expires,
        hmac_secret=_key(secret_key, b"challenge"), hmac_key_secret=_key(secret_key, b"key"))
    return challenge.to_dict()


def _signature(payload: str) -> str:
    try:
        data = json.loads(base64.b64decode(payload, validate=False))
        return str(data["challenge"]["signature"])
    except (ValueError, KeyError, TypeError):
        return ""


def verify_pow(settings: Settings, secret_key: bytes, payload: str) -> None:
    """Accepts a solved challenge once; raises ServiceError otherwise."""
    if not payload:
        raise _missing(FIELD)
    try:
        result = altcha.verify_solution(payload, _key(secret_key, b"challenge"),
                                        hmac_key_secret=_key(secret_key, b"key"))
    except Exception:  # noqa: BLE001 - a mangled payload is a refusal, whatever broke inside
        raise _invalid(FIELD) from None
    if result.expired:
        raise _expired(FIELD)
    signature = _signature(payload)
    if not result.verified or not signature:
        raise _invalid(FIELD)
    now = int(time.time())
    # Kept until it would have expired anyway: the longest a challenge can live from now.
    until = now + settings["public.captcha_expire_minutes"] * 60
    with db.write(db.get_engine()) as conn:
        drop_states_below(conn, STATE_PREFIX, _stamp(now))
        claimed = claim_state(conn, STATE_PREFIX + signature[:64], _stamp(until))
    if not claimed:
        raise _invalid(FIELD)      # a solution used a second time


def _stamp(epoch: int) -> str:
    return f"{epoch:012d}"                        # compares as text in the order of time


def _secret(settings: Settings) -> str:
    path = settings["public.captcha_secret_file"]
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        log.error("public.captcha_secret_file %r cannot be read", path)
        return ""


def verify_provider(settings: Settings, form: dict, ip: str) -> None:
    """Asks the provider whether the widget's token is good; raises ServiceError otherwise
    (also when the provider cannot be reached: no answer is no proof)."""
    provider = PROVIDERS[settings["public.captcha"]]
    token = form.get(provider.field, "")
    if not token:
        raise _missing(provider.field)
    secret = _secret(settings)
    if not secret:
        raise _unverified(provider.field)
    policy = http_guard.Policy(networks_setting="public.captcha_allowed_networks",
                               allowed_networks=settings["public.captcha_allowed_networks"],
                               timeout=5.0, max_bytes=64 * 1024)
    body = urlencode({"secret": secret, provider.token_name: token,
                      "ip" if provider.token_name == "token" else "remoteip": ip}).encode()
    try:
        response = http_guard.request(
            policy, "POST", settings["public.captcha_verify_url"] or provider.verify_url,
            body=body, headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False)
        answer = json.loads(response.body) if response.status == 200 else {}
    except (http_guard.Refused, ValueError) as exc:
        log.warning("captcha verification at %s failed: %s", provider.verify_url, exc)
        raise _unverified(provider.field) from None
    if not isinstance(answer, dict):
        answer = {}
    if answer.get("success") is True or answer.get("status") == "ok":
        return
    raise (_invalid if answer else _unverified)(provider.field)


def verify(settings: Settings, secret_key: bytes, form: dict, ip: str) -> None:
    """The robot check that public.captcha asks for (a provider is asked outside any database
    transaction); raises ServiceError."""
    kind = settings["public.captcha"]
    if kind == "pow":
        verify_pow(settings, secret_key, form.get(FIELD, ""))
    elif kind in PROVIDERS:
        verify_provider(settings, form, ip)


def is_disposable(domain: str) -> bool:
    """The domain or one of its parents is on the disposable-domain list."""
    labels = domain.lower().rstrip(".").split(".")
    return any(".".join(labels[i:]) in DISPOSABLE_DOMAINS for i in range(len(labels) - 1))


def receives_mail(settings: Settings, domain: str) -> bool | None:
    """True or False, or None when DNS did not answer in time (could not check)."""
    dns = Dns(settings["deliverability.nameservers"], timeout=MX_TIMEOUT)
    try:
        exchanges = dns.mx(domain)
        if exchanges:
            return any(host not in ("", ".") for _, host in exchanges)    # "0 ." is a null MX
        return bool(dns.addresses(domain))       # no MX: the address itself takes mail
    except TempError as exc:
        log.info("MX check of %s could not be made: %s", domain, exc)
        return None


def check_address(settings: Settings, email: str) -> None:
    """Refuses an address at a disposable domain or at one that receives no email."""
    domain = email.rpartition("@")[2].strip().lower()
    if "." not in domain.strip("."):
        return                                  # not an address: the form says so next
    if settings["public.check_disposable"] and is_disposable(domain):
        raise ServiceError("Addresses at %(domain)s are disposable. Please use a permanent "
                             "address.", "email", domain=domain)
    if settings["public.check_mx"] and receives_mail(settings, domain) is False:
        raise ServiceError("%(domain)s does not receive email (it has no mail server). Please "
                             "check the address.", "email", domain=domain)


def csp_sources(settings: Settings) -> tuple[str, ...]:
    """Origins the form page must allow scripts and frames from (a provider's widget)."""
    provider = PROVIDERS.get(settings["public.captcha"])
    return provider.origins if provider else ()
