"""The local spam score: SpamAssassin's spamd (Debian: `apt-get install spamd`) scores a
composed message over the SPAMC protocol (aiospamc). spamd is optional: when the address
(deliverability.spamd_address) is empty, or nothing answers there, the score is "not
installed" — said plainly, never an error."""
from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiospamc
from aiospamc.exceptions import AIOSpamcConnectionFailed, ClientException, TimeoutException

from altkraft_onprem.config import Settings

# A rule line of the report: " 1.5 HTML_IMAGE_ONLY_12     BODY: HTML: images with 800-1200 …"
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass
class Score:
    score: float
    threshold: float            # spamd's required score: at or above it the message is spam
    rules: list[tuple[float, str, str]] = field(default_factory=list)   # (points, name, what)

    def top(self, count: int = 6) -> list[tuple[float, str, str]]:
        """The rules that added the most."""
        return sorted((r for r in self.rules if r[0] > 0), key=lambda r: -r[0])[:count]


class Unavailable(Exception):
    """No score: spamd is switched off, not installed or not answering."""


def address(settings: Settings) -> tuple[str, int] | None:
    text = settings["deliverability.spamd_address"]
    if not text:
        return None
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def rules_of(report: str) -> list[tuple[float, str, str]]:
    found: list[tuple[float, str, str]] = []
    started = False
    for line in report.splitlines():
        if line.startswith("----"):
            started = True
            continue
        if not started:
            continue
        match = _RULE.match(line)
        if match:
            found.append((float(match.group(1)), match.group(2), match.group(3).strip()))
        elif found and line.startswith(" " * 6) and line.strip():
            points, name, what = found[-1]
            found[-1] = (points, name, f"{what} {line.strip()}")
    return found


def _run(coroutine):
    """aiospamc is asyncio: run it to its end here, or in a thread of its own when this thread
    already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def score(settings: Settings, message: bytes) -> Score:
    """The message's score and the rules behind it; Unavailable when there is none."""
    where = address(settings)
    if where is None:
        raise Unavailable("the spam score is switched off (deliverability.spamd_address is empty)")
    host, port = where
    timeout = settings["deliverability.spamd_timeout_seconds"]
    try:
        response = _run(aiospamc.report(
            message, host=host, port=port, timeout=aiospamc.Timeout(total=timeout,
                                                                   connection=min(timeout, 5.0))))
    except AIOSpamcConnectionFailed:
        raise Unavailable(f"SpamAssassin is not installed or not running: nothing answers at "
                          f"{host}:{port} (deliverability.spamd_address; Debian: apt-get "
                          "install spamd)") from None
    except TimeoutException:
        raise Unavailable(f"spamd at {host}:{port} did not answer within {timeout:g} s") from None
    except (ClientException, OSError) as exc:
        raise Unavailable(f"spamd at {host}:{port} failed: {exc or type(exc).__name__}") from None
    spam = response.headers.get("Spam")
    if spam is None:
        raise Unavailable(f"spamd at {host}:{port} answered without a score")
    return Score(float(spam.score), float(spam.threshold),
                 rules_of(bytes(response.body or b"").decode("utf-8", "replace")))
