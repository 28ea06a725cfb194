"""Row validation for imports: cells -> (email, standard values, custom values) in a tight loop.

The field rules are the audience's (normalise_email, clean_standard, clean_custom); this
module only makes them cheap per row: values repeat a lot in real files (countries, time
zones, dates, first names), so each column remembers what it already cleaned, and the
common shape of address (ASCII dot-atom local part) skips the full email-validator pass once
its domain has been checked.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

from altkraft_onprem.audience.models import (
    STANDARD_FIELDS,
    FieldError,
    clean_custom,
    clean_standard,
    normalise_email,
)

from .mapping import CUSTOM_PREFIX
from .writer import DATE_FIELDS, PROFILE

CACHE_CAP = 20_000                 # distinct values remembered per column
_MISS = object()
_ATEXT_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")


class RowError(ValueError):
    """A row that cannot be imported; str() is the reason shown in the report."""


@lru_cache(maxsize=65_536)
def _checked_domain(domain: str) -> str:
    """The normalised form of an ASCII domain, as normalise_email gives it (raises FieldError)."""
    return normalise_email("a@" + domain).rpartition("@")[2]


def fast_normalise_email(text: str) -> str:
    """Same result as normalise_email, much faster for the everyday address shape."""
    candidate = text.strip()
    local, at, domain = candidate.rpartition("@")
    if at and len(candidate) <= 200 and len(local) <= 64 and candidate.isascii() \
            and _ATEXT_LOCAL.match(local):
        try:
            return f"{local}@{_checked_domain(domain.lower())}"
        except FieldError:
            pass                       # the full check gives the precise message
    return normalise_email(text)


@dataclass(frozen=True)
class CustomField:
    key: str
    type: str
    choices: tuple[str, ...] = ()


def _clean_text_cell(clean, raw: str):
    if "\ufffd" in raw:
        raise FieldError("value", "holds bytes that are not valid in the file's encoding")
    return clean(raw)


class Validator:
    """Validates the mapped cells of one table's rows."""

    def __init__(self, columns: Sequence[tuple[int, str]], custom_fields: Mapping[str, CustomField],
                 labels: Sequence[str] = (), *, stored: bool = False):
        """`stored`: check() returns (email, the profile as writer.stored_profile makes it)
        instead of (email, standard values, custom values)."""
        self.stored = stored
        self.columns = []
        self.email_index: int | None = None
        for index, target in columns:
            label = labels[index] if index < len(labels) else str(index + 1)
            if target == "email":
                self.email_index = index
                continue
            if target.startswith(CUSTOM_PREFIX):
                key = target[len(CUSTOM_PREFIX):]
                field = custom_fields.get(key)
                if field is None:
                    raise RowError(f"no custom field {key!r} (column {label!r})")
                clean = partial(clean_custom, field.type, choices=field.choices, name=key)
                self.columns.append((index, key, True, partial(_clean_text_cell, clean), {}, {}))
            elif target in STANDARD_FIELDS:
                clean = partial(clean_standard, target)
                if stored and target in DATE_FIELDS:     # cached in its stored form
                    clean = partial(_iso_date, clean)
                self.columns.append((index, target, False, partial(_clean_text_cell, clean), {}, {}))
            else:
                raise RowError(f"unknown field {target!r} for column {label!r}")
        if self.email_index is None:
            raise RowError("no column is mapped to email")
        # cells -> (email, standard values, custom values) or (email, stored); raises RowError
        self.check = self._compile()

    def __call__(self, cells: list[str]) -> tuple[str, dict, dict]:
        return self.check(cells)

    def _compile(self):
        """The row function for these columns, generated once: straight-line code per column
        (a cache hit is one dict lookup) costs half of a loop over the columns per row. Only
        column indexes go into the source; names, caches and cleaners stay in the namespace."""
        namespace = {"MISS": _MISS, "RowError": RowError, "FieldError": FieldError,
                     "normalise": fast_normalise_email}
        lines = ["def validate(cells):",
                 "    width = len(cells)",
                 f"    raw = cells[{self.email_index}] if {self.email_index} < width else ''",
                 "    if '\\ufffd' in raw:",
                 "        raise RowError(\"email: holds bytes that are not valid in the file's encoding\")",
                 "    try:",
                 "        email = normalise(raw)",
                 "    except FieldError as exc:",
                 "        raise RowError(f'email: {exc.message}') from None",
                 "    custom = {}"]
        if self.stored:
            lines.append("    " + " = ".join(f"s{i}" for i in range(len(PROFILE))) + " = None")
        else:
            lines.append("    values = {}")
        for n, (index, name, is_custom, clean, cache, bad) in enumerate(self.columns):
            namespace[f"cache{n}"] = cache
            namespace[f"slow{n}"] = partial(_clean_cell, name, clean, cache, bad)
            namespace[f"key{n}"] = name
            if is_custom:
                target = f"custom[key{n}]"
            else:
                target = f"s{PROFILE.index(name)}" if self.stored else f"values[key{n}]"
            lines += [f"    if {index} < width:",
                      f"        raw = cells[{index}]",
                      "        if raw:",
                      f"            value = cache{n}.get(raw, MISS)",
                      "            if value is MISS:",
                      f"                value = slow{n}(raw)",
                      "            if value is not None:",
                      f"                {target} = value"]
        if self.stored:
            namespace["dumps"] = json.dumps
            lines.append("    return email, (" + "".join(f"s{i}, " for i in range(len(PROFILE)))
                         + "dumps(custom))")
        else:
            lines.append("    return email, values, custom")
        exec("\n".join(lines), namespace)  # noqa: S102 - source holds only integers
        return namespace["validate"]


def _iso_date(clean, raw: str):
    value = clean(raw)
    return None if value is None else value.isoformat()


def _clean_cell(name: str, clean, cache: dict, bad: dict, raw: str):
    """A cell not in its column's cache: cleaned and remembered (a failure too, in `bad`)."""
    error = bad.get(raw)
    if error is None:
        try:
            value = clean(raw)
        except FieldError as exc:
            error = exc
            if len(bad) < CACHE_CAP:
                bad[raw] = exc
        else:
            if len(cache) < CACHE_CAP:
                cache[raw] = value
            return value
    raise RowError(f"{name}: {error.message}")


def validate_record(record: Mapping, custom_fields: Mapping[str, CustomField]) -> tuple[str, dict, dict]:
    """An API record {"email", <standard fields>, "fields": {custom}} -> typed values."""
    try:
        email = fast_normalise_email(record.get("email") or "") if isinstance(record.get("email"), str) \
            else normalise_email(record.get("email"))
    except FieldError as exc:
        raise RowError(f"email: {exc.message}") from None
    values = {}
    for name in STANDARD_FIELDS[1:]:
        if name in record and record[name] is not None:
            try:
                value = clean_standard(name, record[name])
            except FieldError as exc:
                raise RowError(f"{name}: {exc.message}") from None
            if value is not None:
                values[name] = value
    custom = {}
    extra = record.get("fields") or {}
    if not isinstance(extra, Mapping):
        raise RowError('fields: expected an object {"custom_field": value}')
    for key, raw in extra.items():
        field = custom_fields.get(key)
        if field is None:
            raise RowError(f"fields.{key}: no such custom field")
        try:
            value = clean_custom(field.type, raw, field.choices, name=key)
        except FieldError as exc:
            raise RowError(f"fields.{key}: {exc.message}") from None
        if value is not None:
            custom[key] = value
    return email, values, custom
