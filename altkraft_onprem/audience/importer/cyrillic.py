"""Is a single-byte text file Russian (Cyrillic) text, and in which code page?

General detectors take a short cp1251 file for cp1252 ("Èìÿ1" for "Имя1"), and they tell
cp1251 from KOI8-R badly on names in capitals. Our users are Russian-speaking, so Cyrillic is
tried first: the bytes count as Cyrillic text when, read in that code page, the words that
hold non-ASCII letters are Cyrillic through and through (Western text read that way mixes
Latin and Cyrillic letters in one word: "Mьller"). Between the Cyrillic code pages the one
whose words are cased like words ("Иван", "ИВАН", "иван" — not "хБЮМ") wins, then the one
whose letter pairs are likelier in Russian. The pair statistics come from the Russian names
of languages, countries, currencies, months and days in the CLDR data Babel ships.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

CODE_PAGES = ("cp1251", "koi8_r")
_WORD = re.compile(r"[^\W\d_]{2,}")
_RUSSIAN_WORD = re.compile(r"[а-яё]+")
# Words with non-ASCII letters that must be Cyrillic through and through.
MIN_CYRILLIC_SHARE = 0.8


def _is_cyrillic(char: str) -> bool:
    return "\u0400" <= char <= "\u04ff"


def _well_cased(word: str) -> bool:
    return word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower())


@lru_cache(maxsize=1)
def _pair_log_odds() -> tuple[dict[str, float], float]:
    """log P(letter pair) in Russian words, " " marking a word's ends; and the value of an
    unseen pair."""
    from babel import Locale

    russian = Locale("ru")
    texts = [name for table in (russian.languages, russian.territories, russian.currencies,
                                russian.scripts) for name in table.values()]
    for calendar in (russian.months, russian.days):
        for context in calendar.values():
            for names in context.values():
                texts.extend(names.values())
    pairs: Counter[str] = Counter()
    for text in texts:
        for word in _RUSSIAN_WORD.findall(text.lower()):
            padded = f" {word} "
            pairs.update(padded[i:i + 2] for i in range(len(padded) - 1))
    total = sum(pairs.values())
    return {pair: math.log(n / total) for pair, n in pairs.items()}, math.log(0.5 / total)


def _score(text: str) -> tuple[float, float] | None:
    """(share of well-cased words, mean pair log-probability) of the Cyrillic words, or None
    when the text is not Cyrillic text."""
    words = [w for w in _WORD.findall(text) if not w.isascii()]
    cyrillic = [w for w in words if all(_is_cyrillic(c) for c in w)]
    if not cyrillic or len(cyrillic) < MIN_CYRILLIC_SHARE * len(words):
        return None
    table, unseen = _pair_log_odds()
    logs = []
    for word in cyrillic:
        padded = f" {word.lower()} "
        logs.extend(table.get(padded[i:i + 2], unseen) for i in range(len(padded) - 1))
    cased = sum(map(_well_cased, cyrillic)) / len(cyrillic)
    return cased, sum(logs) / len(logs)


def cyrillic_code_page(sample: bytes) -> str | None:
    """"cp1251" or "koi8_r" when the (non-UTF-8) bytes read as Cyrillic text, else None."""
    best: tuple[tuple[float, float], str] | None = None
    for code_page in CODE_PAGES:
        score = _score(sample.decode(code_page, errors="replace"))
        if score is not None and (best is None or score > best[0]):
            best = (score, code_page)
    return best[1] if best else None
