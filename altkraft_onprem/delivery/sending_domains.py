"""Per From domain settings (`delivery.sending_domains`, made on the Settings page or in the
file): the domain of the VERP Return-Path and the host of the click and open links."""
from __future__ import annotations

from urllib.parse import urlsplit


def sending_domain(settings, from_domain: str) -> dict:
    """The domain's entry ({} when it has none)."""
    name = from_domain.strip().lower().rstrip(".")
    for entry in settings["delivery.sending_domains"]:
        if entry["domain"].lower() == name:
            return entry
    return {}


def bounce_domain(settings, from_domain: str) -> str:
    """The domain's own bounce domain, else delivery.bounce_domain, else the From domain."""
    return (sending_domain(settings, from_domain).get("bounce_domain")
            or settings["delivery.bounce_domain"] or from_domain.lower())


def tracking_base(settings, from_domain: str) -> str:
    """Where the click and open links of mail from this domain point: its tracking host with
    the public URL's scheme, else the public URL itself."""
    host = sending_domain(settings, from_domain).get("tracking_host")
    public = settings["server.public_url"]
    return f"{urlsplit(public).scheme}://{host}" if host else public
