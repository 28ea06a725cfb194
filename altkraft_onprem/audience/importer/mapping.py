"""Column mapping: which field each column of a table fills.

A mapping is a dict {column: target}; a column is named by its header text, or by its
1-based position ("1", "2", …) when the table has no header. A target is a standard field
name ("email", "first_name", …), "custom.<key>" for a custom field, or "" to skip the column.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

CUSTOM_PREFIX = "custom."
SKIP = ""

# Header spellings seen in exports from Excel, Google Sheets, CRMs and other ESPs (en + ru),
# compared after lower-casing and dropping everything but letters and digits.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "emailaddress", "e-mail address", "mail", "почта",
              "электронная почта", "эл. почта", "эл почта", "емейл", "имейл", "емэйл",
              "адрес электронной почты", "адрес почты", "e-mail адрес", "email адрес"),
    "first_name": ("first name", "firstname", "given name", "name", "first", "имя", "имя клиента"),
    "last_name": ("last name", "lastname", "surname", "family name", "last", "фамилия"),
    "phone": ("phone", "phone number", "telephone", "tel", "mobile", "mobile phone", "cell",
              "телефон", "моб телефон", "мобильный", "мобильный телефон", "номер телефона", "тел"),
    "gender": ("gender", "sex", "пол"),
    "birth_date": ("birth date", "birthdate", "birthday", "date of birth", "dob",
                   "дата рождения", "день рождения", "др"),
    "company": ("company", "organization", "organisation", "company name", "employer",
                "компания", "организация", "место работы"),
    "city": ("city", "town", "город", "населенный пункт", "населённый пункт"),
    "region": ("region", "state", "province", "county", "регион", "область", "край", "субъект"),
    "country": ("country", "country code", "страна", "код страны"),
    "language": ("language", "lang", "locale", "язык"),
    "timezone": ("timezone", "time zone", "tz", "часовой пояс", "таймзона"),
}


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.strip().lower().replace("ё", "е"))


_LOOKUP: dict[str, str] = {}
for _field, _names in SYNONYMS.items():
    _LOOKUP[_key(_field)] = _field
    for _name in _names:
        _LOOKUP.setdefault(_key(_name), _field)


def guess_field(header: str, custom_keys: Iterable[str] = ()) -> str:
    """The field a header names, or "" when it names none we know."""
    key = _key(header)
    if not key:
        return SKIP
    if key in _LOOKUP:
        return _LOOKUP[key]
    for custom in custom_keys:
        if _key(custom) == key:
            return CUSTOM_PREFIX + custom
    return SKIP


def looks_like_email(cell: str) -> bool:
    cell = cell.strip()
    at = cell.find("@")
    return 0 < at < len(cell) - 1 and " " not in cell and "." in cell[at:]


def column_names(header: list[str] | None, width: int) -> list[str]:
    """How the mapping names each column: its header text, or its 1-based position."""
    names = [str(i + 1) for i in range(width)]
    if header:
        for i, text in enumerate(header[:width]):
            if text:
                names[i] = text
    return names


def auto_mapping(header: list[str] | None, width: int, custom_keys: Iterable[str] = (),
                 sample_rows: Iterable[list[str]] = ()) -> dict[str, str]:
    """A mapping guessed from the header; without one, the column holding addresses is email."""
    custom_keys = list(custom_keys)
    names = column_names(header, width)
    mapping = {name: SKIP for name in names}
    taken: set[str] = set()
    if header:
        for name in names:
            target = guess_field(name, custom_keys) if not name.isdigit() else SKIP
            if target and target not in taken:
                mapping[name] = target
                taken.add(target)
    if "email" not in taken:
        hits = [0] * width
        for cells in sample_rows:
            for i, cell in enumerate(cells[:width]):
                if looks_like_email(cell):
                    hits[i] += 1
        if any(hits):
            best = max(range(width), key=lambda i: hits[i])
            mapping[names[best]] = "email"
    return mapping


def resolve(mapping: Mapping[str, str], header: list[str] | None, width: int) -> list[tuple[int, str]]:
    """(column index, target) pairs for the mapped columns of a table. Keys may be header
    texts or 1-based positions; unknown keys are ignored (another archive member's)."""
    names = column_names(header, width)
    index = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
        index.setdefault(_key(name), i)
        index.setdefault(str(i + 1), i)
    pairs: dict[int, str] = {}
    for column, target in mapping.items():
        if not target:
            continue
        i = index.get(column, index.get(_key(column)))
        if i is not None:
            pairs[i] = target
    return sorted(pairs.items())


def targets(mapping: Mapping[str, str]) -> set[str]:
    return {t for t in mapping.values() if t}
