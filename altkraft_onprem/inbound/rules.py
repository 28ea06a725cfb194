"""Bounce classification as a versioned rule table: the first rule that matches a bounce's
enhanced status code and diagnostic text gives its class. A bounce keeps the version it was
classified with, so classifying it again under that version gives the same answer; a new
table is a new version (and "reclassify" applies the current one).

hard -> suppressed at once; soft -> suppressed after inbound.soft_bounce_limit of them;
policy (blocklists, DMARC, rate limits) and content -> never the recipient's fault: a
deliverability alert, no suppression; unknown -> the review queue.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CURRENT_VERSION = 1


@dataclass(frozen=True)
class Rule:
    name: str
    bounce_class: str
    status: str = ""        # regular expression the whole enhanced status code must match
    text: str = ""          # regular expression searched (case-insensitive) in the diagnostic

    def matches(self, status: str, text: str) -> bool:
        if self.status and not re.fullmatch(self.status, status or ""):
            return False
        return not self.text or re.search(self.text, text or "", re.I) is not None


_BLOCKLIST = (r"block ?list|black ?list|spamhaus|spamcop|barracuda|sorbs|\bdnsbl\b|\brbl\b|"
              r"listed (at|on|in)|reputation|blocked (using|by|due)|poor sending|"
              r"temporarily (deferred|rate limited)|too many (messages|connections)|rate limit")
_CONTENT = r"\bspam\b|content|virus|malware|phish|suspicious|url ?block|message (was )?(rejected|blocked) (due|because)"
_UNKNOWN_USER = (r"user unknown|unknown user|no such (user|mailbox|recipient)|does not exist|"
                 r"doesn't exist|mailbox (not found|unavailable|disabled)|invalid (mailbox|recipient)|"
                 r"recipient (not found|unknown|rejected)|address rejected|not a valid mailbox|"
                 r"account (has been )?(disabled|deactivated|closed|suspended)|no mailbox|"
                 r"неизвестный пользователь|нет такого пользователя|не существует")
_FULL = r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?storage|insufficient (system )?storage"

TABLES: dict[int, tuple[Rule, ...]] = {
    1: (
        Rule("dmarc", "policy", status=r"5\.7\.(23|24|25|26|27)"),
        Rule("auth", "policy", text=r"\bdmarc\b|\bspf\b|\bdkim\b|authentication|unauthenticated"),
        Rule("blocklist", "policy", status=r"[45]\.7\.\d+", text=_BLOCKLIST),
        Rule("blocklist-text", "policy", text=_BLOCKLIST),
        Rule("policy-temporary", "policy", status=r"4\.7\.\d+"),
        Rule("content", "content", status=r"5\.(6\.\d+|7\.\d+)", text=_CONTENT),
        Rule("mailbox-unknown", "hard", status=r"5\.1\.(0|1|2|3|6|10)"),
        Rule("mailbox-disabled", "hard", status=r"5\.2\.1"),
        Rule("mailbox-full", "soft", status=r"[45]\.2\.2"),
        Rule("user-unknown-text", "hard", status=r"(5\.\d+\.\d+)?", text=_UNKNOWN_USER),
        Rule("mailbox-full-text", "soft", text=_FULL),
        Rule("policy", "policy", status=r"5\.7\.\d+"),
        Rule("network", "soft", status=r"4\.4\.\d+"),
        Rule("system", "soft", status=r"4\.3\.\d+"),
        Rule("temporary", "soft", status=r"4\.\d+\.\d+"),
        Rule("unknown", "unknown"),
    ),
}


def classify(status: str, diagnostic: str, version: int = CURRENT_VERSION) -> tuple[str, str]:
    """(class, rule name) of a bounce under the given table version."""
    for rule in TABLES[version]:
        if rule.matches(status, diagnostic):
            return rule.bounce_class, rule.name
    return "unknown", "unknown"
