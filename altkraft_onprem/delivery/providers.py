"""Mailbox providers by recipient domain: reports, the complaint-rate monitor and the
per-provider figures group by these (the big providers run FBLs and block per provider)."""
from __future__ import annotations

from altkraft_onprem.i18n import N_

PROVIDERS = {
    "gmail": ("gmail.com", "googlemail.com"),
    "outlook": ("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk",
                "hotmail.fr", "live.ru", "outlook.ru"),
    "yahoo": ("yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "yahoo.co.uk",
              "yahoo.fr", "yahoo.de"),
    "mailru": ("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "mail.ua"),
    "yandex": ("yandex.ru", "ya.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua",
               "narod.ru"),
}
PROVIDER_NAMES = (*PROVIDERS, "other")
# What people read for each (proper names need no translation; "other" does).
PROVIDER_LABELS = {"gmail": "Gmail", "outlook": "Outlook / Hotmail", "yahoo": "Yahoo / AOL",
                   "mailru": "Mail.ru", "yandex": "Yandex", "other": N_("other")}
_BY_DOMAIN = {domain: name for name, domains in PROVIDERS.items() for domain in domains}


def provider(email_address: str) -> str:
    return _BY_DOMAIN.get(email_address.rpartition("@")[2].strip().lower(), "other")
