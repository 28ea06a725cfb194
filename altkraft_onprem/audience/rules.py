"""Audience field rules, pure (no database): the vocabulary, and normalise_email,
clean_standard, clean_custom and friends that every writer uses.

Import these rules; never re-implement them (the importer, the API and the UI share them).
"""
from __future__ import annotations

import json
import math
import re
import zoneinfo
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from altkraft_onprem.errors import Translatable

# --- vocabulary -------------------------------------------------------------------------------

STANDARD_FIELDS: tuple[str, ...] = (
    "email", "first_name", "last_name", "phone", "gender", "birth_date", "company", "city",
    "region", "country", "language", "timezone",
)
# Type of each standard field as the segment builder sees it.
STANDARD_TYPES: dict[str, str] = {
    "email": "text", "first_name": "text", "last_name": "text", "phone": "text",
    "gender": "choice", "birth_date": "date", "company": "text", "city": "text",
    "region": "text", "country": "choice", "language": "text", "timezone": "text",
}
GENDERS = ("female", "male", "other")
FIELD_TYPES = ("text", "number", "date", "datetime", "boolean", "choice", "json")
SUBSCRIBER_STATES = ("active", "suppressed", "bounced", "complained")
MEMBER_STATUSES = ("unconfirmed", "confirmed", "unsubscribed")
CUSTOM_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEXT_MAX = 200
CUSTOM_TEXT_MAX = 10_000


class FieldError(Translatable, ValueError):
    """A value that does not fit its field; `field` names it, `message` says why (a template
    with named values, translated where it is shown)."""

    def __init__(self, field: str, message: str, **values: object):
        self._set_text(message, values)
        self.field = field
        super().__init__(f"{field}: {self.message}")


# --- pure rules -------------------------------------------------------------------------------

def normalise_email(text) -> str:
    """Syntax-check an address; keep the local part as typed, lower-case the domain and turn
    an internationalised domain into its IDNA (xn--) form. Raises FieldError('email', …)."""
    if not isinstance(text, str):
        raise FieldError("email", "an email address is required")
    candidate = text.strip()
    if not candidate:
        raise FieldError("email", "an email address is required")
    if len(candidate) > 320:
        raise FieldError("email", "longer than 320 characters")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError("email", "%(reason)s", reason=str(exc)) from None   # its own English
    return f"{result.local_part}@{result.ascii_domain.lower()}"


def email_domain(email: str) -> str:
    return email.rpartition("@")[2]


def normalise_domain(text) -> str:
    """A bare domain for domain suppressions: lower-cased, IDNA, no '@'."""
    if not isinstance(text, str) or not text.strip():
        raise FieldError("domain", "a domain is required")
    value = text.strip().lstrip("@").rstrip(".").lower()
    try:
        return normalise_email(f"x@{value}").rpartition("@")[2]
    except FieldError as exc:
        # email_validator speaks of "the part after the @-sign": here that is the whole value
        raise FieldError("domain", exc.template, **{
            key: str(value).replace("after the @-sign", "") for key, value in exc.values.items()}) from None


@lru_cache(maxsize=1)
def _timezones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@lru_cache(maxsize=1)
def countries() -> dict[str, str]:
    """ISO 3166-1 alpha-2 code -> English name (from Babel's CLDR data)."""
    from babel import Locale
    skip = {"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"}
    return {code: name for code, name in Locale("en").territories.items()
            if len(code) == 2 and code.isalpha() and code not in skip}


_GENDER_WORDS = {
    "f": "female", "female": "female", "w": "female", "woman": "female", "ж": "female",
    "жен": "female", "женский": "female", "женщина": "female",
    "m": "male", "male": "male", "man": "male", "м": "male", "муж": "male", "мужской": "male",
    "мужчина": "male", "o": "other", "other": "other", "x": "other", "другое": "other",
}
_PHONE_STRIP = re.compile(r"[\s\-().\u00a0/]")
_PHONE_RE = re.compile(r"^\+?[0-9]{5,20}$")
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d", "%Y.%m.%d")
_PLAIN_PHONE = re.compile(r"\+?[0-9]{5,20}\Z")
_PLAIN_INT = re.compile(r"-?[0-9]{1,15}\Z")       # below 2**53: the same value as via Decimal
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _text(name: str, raw, limit: int = TEXT_MAX) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal)):
        raise FieldError(name, "expected text")
    value = _CONTROL.sub("", str(raw)).strip()
    if not value:
        return None
    if len(value) > limit:
        raise FieldError(name, "longer than %(limit)s characters", limit=limit)
    return value


def parse_date(name: str, raw) -> date | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        raise FieldError(name, "expected a date such as 1990-12-31")
    value = raw.strip()
    if not value:
        return None
    if "T" in value or " " in value:
        value = value.replace("T", " ").split(" ", 1)[0]
    for fmt in _DATE_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        return parsed
    raise FieldError(name, "not a date: %(raw)s (expected YYYY-MM-DD or DD.MM.YYYY)", raw=repr(raw))


def parse_datetime(name: str, raw) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            try:
                value = datetime.combine(parse_date(name, text), datetime.min.time())
            except FieldError:
                raise FieldError(name, "not a date and time: %(raw)s (expected ISO 8601, e.g. 2024-05-01T10:00:00Z)", raw=repr(raw)) from None
    else:
        raise FieldError(name, "expected a date and time")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def clean_standard(name: str, raw):
    """Validate and type one standard field; empty input becomes None. Raises FieldError."""
    if name == "email":
        return normalise_email(raw)
    if name not in STANDARD_FIELDS:
        raise FieldError(name, "unknown standard field")
    if name == "birth_date":
        value = parse_date(name, raw)
        if value is not None and not (date(1900, 1, 1) <= value <= date.today()):
            raise FieldError(name, "birth date out of range: %(date)s", date=value.isoformat())
        return value
    if name == "phone" and isinstance(raw, str) and _PLAIN_PHONE.match(raw) and raw[:2] != "00":
        return raw                     # already in its stored form, as most phones in a file are
    text = _text(name, raw)
    if text is None:
        return None
    if name == "phone":
        value = _PHONE_STRIP.sub("", text)
        if value.startswith("00"):
            value = "+" + value[2:]
        if not _PHONE_RE.match(value):
            raise FieldError(name, "not a phone number: %(text)s", text=repr(text))
        return value
    if name == "gender":
        value = _GENDER_WORDS.get(text.lower())
        if value is None:
            raise FieldError(name, "unknown gender %(text)s (expected female, male or other)", text=repr(text))
        return value
    if name == "country":
        code = text.upper()
        if code in countries():
            return code
        by_name = {n.lower(): c for c, n in countries().items()}
        if text.lower() in by_name:
            return by_name[text.lower()]
        raise FieldError(name, "not an ISO 3166 country code: %(text)s", text=repr(text))
    if name == "language":
        value = text.replace("_", "-").lower()
        if not _LANG_RE.match(value):
            raise FieldError(name, "not a language tag: %(text)s (expected e.g. en or pt-BR)", text=repr(text))
        head, _, tail = value.partition("-")
        return head + ("-" + tail.upper() if len(tail) == 2 else ("-" + tail if tail else ""))
    if name == "timezone":
        value = _timezones().get(text.lower())
        if value is None:
            raise FieldError(name, "not an IANA time zone: %(text)s (expected e.g. Europe/Moscow)", text=repr(text))
        return value
    return text


def _number(name: str, raw):
    if isinstance(raw, bool):
        raise FieldError(name, "expected a number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, (float, Decimal)):
        value = float(raw)
    elif isinstance(raw, str):
        if _PLAIN_INT.match(raw):      # the usual cell: no Decimal round trip needed
            return int(raw)
        text = raw.strip().replace("\u00a0", "").replace(" ", "")
        if not text:
            return None
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        try:
            value = float(Decimal(text))
        except (InvalidOperation, ValueError):
            raise FieldError(name, "not a number: %(raw)s", raw=repr(raw)) from None
    else:
        raise FieldError(name, "expected a number")
    if math.isnan(value) or math.isinf(value):
        raise FieldError(name, "not a finite number")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


_TRUE = {"1", "true", "yes", "y", "on", "да", "t"}
_FALSE = {"0", "false", "no", "n", "off", "нет", "f"}


def clean_custom(field_type: str, raw, choices=(), *, name: str = "value"):
    """Validate one custom field value into its JSON form: text/choice -> str, number -> int or
    float, date -> 'YYYY-MM-DD', datetime -> 'YYYY-MM-DDTHH:MM:SS+00:00' (UTC), boolean -> bool,
    json -> any JSON value. Empty input becomes None. Raises FieldError(name, …)."""
    if raw is None:
        return None
    if field_type == "text":
        return _text(name, raw, CUSTOM_TEXT_MAX)
    if field_type == "number":
        return _number(name, raw)
    if field_type == "date":
        value = parse_date(name, raw)
        return value.isoformat() if value else None
    if field_type == "datetime":
        value = parse_datetime(name, raw)
        return value.isoformat() if value else None
    if field_type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        text = str(raw).strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise FieldError(name, "not yes/no: %(raw)s", raw=repr(raw))
    if field_type == "choice":
        text = _text(name, raw)
        if text is None:
            return None
        options = list(choices or ())
        if text in options:
            return text
        lowered = {c.lower(): c for c in options}
        if text.lower() in lowered:
            return lowered[text.lower()]
        raise FieldError(name, "%(text)s is not one of: %(options)s", text=repr(text), options=', '.join(options))
    if field_type == "json":
        if isinstance(raw, str):
            if not raw.strip():
                return None
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise FieldError(name, "not valid JSON: %(exc)s", exc=exc) from None
        else:
            value = raw
        try:
            encoded = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise FieldError(name, "not JSON-serialisable") from None
        if len(encoded) > CUSTOM_TEXT_MAX:
            raise FieldError(name, "longer than %(custom_text_max)s characters as JSON", custom_text_max=CUSTOM_TEXT_MAX)
        return value
    raise FieldError(name, "unknown field type %(field_type)s", field_type=repr(field_type))


def check_custom_key(key) -> str:
    if not isinstance(key, str) or not CUSTOM_KEY_RE.match(key):
        raise FieldError("key", "must start with a letter and use only a-z, 0-9 and _ "
                                "(at most 63 characters)")
    if key in STANDARD_FIELDS or key in {"id", "state", "source", "created_at", "updated_at"}:
        raise FieldError("key", "%(key)s is a standard field name", key=repr(key))
    return key


def custom_index_name(key: str) -> str:
    return f"ix_subscribers_custom_{key}"
