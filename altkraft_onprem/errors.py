"""Errors that services raise for people to read; UI and API turn them into messages.

A message is an English template with named values — `NotFound("list %(name)s does not
exist", "list", name=name)` — kept untranslated until it is shown: `message` is the English
text (logs, the CLI, reasons stored in the database, tests), `translated()` the text in the
language of the request being answered. The error classes are extraction keywords
(i18n.KEYWORDS), so the template literal is the catalogue's msgid.
"""
from __future__ import annotations

from flask import has_request_context
from flask_babel import gettext


class Term(str):
    """A word from a fixed vocabulary (a state, a status) used as a value in a message: English
    in `message`, translated in `translated()`. The word itself is marked with N_ where the
    vocabulary is declared."""


class Translatable:
    """An English message template and its values: `message` in English, `translated()` in the
    language of the current request (English outside one). Values that are themselves
    Translatable, or a Term, are translated with it."""

    template: str
    values: dict[str, object]

    def _set_text(self, template: str, values: dict[str, object]) -> None:
        self.template = template
        self.values = values

    @property
    def message(self) -> str:
        """The English text."""
        return _fill(self.template, {k: _english(v) for k, v in self.values.items()})

    def translated(self) -> str:
        if not has_request_context():
            return self.message
        return _fill(gettext(self.template), {k: _translated(v) for k, v in self.values.items()})


class ServiceError(Translatable, Exception):
    """A request a service refuses; `field` names the offending input when there is one."""

    status = 422

    def __init__(self, message: str, field: str | None = None, **values: object):
        self._set_text(message, values)
        self.field = field
        super().__init__(self.message)

    def shown(self) -> str:
        """What a form shows: `field: text` when the error names its field."""
        return f"{self.field}: {self.translated()}" if self.field else self.translated()

    @classmethod
    def like(cls, error: Translatable, field: str | None = None) -> ServiceError:
        """The same message as `error` (still translatable), about `field` (else its own)."""
        return cls(error.template, field if field is not None else getattr(error, "field", None),
                   **error.values)


def _fill(template: str, values: dict[str, object]) -> str:
    return template % values if values else template


def _english(value: object) -> object:
    return value.message if isinstance(value, Translatable) else value


def _translated(value: object) -> object:
    if isinstance(value, Translatable):
        return value.translated()
    if isinstance(value, Term):
        return gettext(value)
    return value


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Forbidden(ServiceError):
    status = 403


class TooManyRequests(ServiceError):
    status = 429
