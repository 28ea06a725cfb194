"""The Jinja sandbox messages are rendered in: no Python internals, no format strings, and
budgets on loop iterations, calls and string sizes so that a hostile or careless template
fails with a clear error instead of hanging a worker or filling its memory.

A render runs in the calling thread (a timeout cannot interrupt it), so the limits are
counted: every loop iteration and every call spends one step of the render's budget, and
operations that could build a huge string are refused before they allocate it.
"""
from __future__ import annotations

import contextvars
import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import ChainableUndefined, nodes, pass_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_STEPS = 200_000            # loop iterations + calls per render
MAX_STRING = 1_000_000         # characters of one value built inside a template
MAX_OUTPUT = 5_000_000         # characters of one rendered part
MAX_RANGE = 10_000

_STEPS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("ak_steps", default=None)
LOOP_GUARD = "_ak_loop"


class LimitExceeded(SecurityError):
    """The template tried to do more work than a message may."""


class MessageUndefined(ChainableUndefined):
    """A missing value. Printing it is an error in every render — preview, test send and
    campaign send alike — so that nothing goes out half-personalised; `default(…)`, `if`
    and loops still see it as empty."""

    __slots__ = ()

    def __str__(self) -> str:
        self._fail_with_undefined_error()
        return ""

    def __html__(self) -> str:
        return str(self)

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any):
        try:
            super()._fail_with_undefined_error(*args, **kwargs)
        except UndefinedError as exc:
            exc.missing_name = self._undefined_name     # for the message naming the variable
            raise


def spend(steps: int = 1) -> None:
    budget = _STEPS.get()
    if budget is None:
        return
    budget[0] -= steps
    if budget[0] < 0:
        raise LimitExceeded(f"the template does too much work (more than {MAX_STEPS} loop "
                            "iterations and calls); simplify loops")


def _loop(iterable: Any):
    if isinstance(iterable, str | bytes | dict | list | tuple | range | set | frozenset):
        spend(len(iterable))        # one check for the whole loop, the common case
        return iterable
    return _counted(iterable)


def _counted(iterable: Any):
    for item in iterable:
        spend()
        yield item


def _check_len(value: Any, what: str = "value") -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_STRING:
        raise LimitExceeded(f"a {what} in the template grew over {MAX_STRING} characters")
    return value


def _capped_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise LimitExceeded(f"range() is limited to {MAX_RANGE} items in messages")
    return rng


_WIDTH = re.compile(r"%[-+ #0]*(\d+)?(?:\.(\d+))?")


def _check_percent_format(fmt: str) -> None:
    for match in _WIDTH.finditer(fmt):
        for group in match.groups():
            if group and int(group) > 1000:
                raise LimitExceeded("format widths over 1000 are not allowed in messages")


_SIZE_METHODS = {"ljust", "rjust", "center", "zfill", "expandtabs"}


class MessageEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any):
        super().__init__(undefined=MessageUndefined, **options)
        self.globals.pop("namespace", None)       # no mutable state that outlives a loop pass
        self.globals.pop("cycler", None)
        self.globals.pop("joiner", None)
        self.globals["range"] = _capped_range
        self.globals[LOOP_GUARD] = _loop
        self.filters["localtime"] = localtime
        self.filters["localdate"] = localdate
        self.filters["format"] = _format_filter
        for name in ("center", "indent"):
            self.filters[name] = _width_checked(self.filters[name])
        self.filters["replace"] = _replace_checked(self.filters["replace"])

    # Every {% for %} iterates through the loop guard (added to the parsed tree).
    def _parse(self, source, name, filename):
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            guarded = nodes.Call(nodes.Name(LOOP_GUARD, "load"), [loop.iter], [], None, None)
            loop.iter = guarded.set_lineno(loop.lineno)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Message variables are plain dicts: their keys first (and fast), no exception raised
        # for every `subscriber.city`.
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in {"format", "format_map", "mro", "translate", "encode"}:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any):
        # str.format / format_map are not offered at all (is_safe_attribute refuses them).
        return None

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        spend()
        for arg in args:
            _check_len(arg, "argument")
        name = getattr(__obj, "__name__", "")
        if name in _SIZE_METHODS and isinstance(getattr(__obj, "__self__", None), str):
            for arg in args:
                if isinstance(arg, int) and arg > MAX_STRING:
                    raise LimitExceeded(f"{name}() width over {MAX_STRING}")
        if name == "replace" and isinstance(getattr(__obj, "__self__", None), str) and len(args) >= 2:
            _estimate_replace(__obj.__self__, args[0], args[1])
        return _check_len(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) \
                        and len(seq) * max(times, 0) > MAX_STRING:
                    raise LimitExceeded(f"a value in the template would exceed {MAX_STRING} characters")
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > 100:
                raise LimitExceeded("exponents over 100 are not allowed in messages")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple) \
                    and len(left) + len(right) > MAX_STRING:
                raise LimitExceeded(f"a value in the template would exceed {MAX_STRING} characters")
        return super().call_binop(context, operator, left, right)


def _estimate_replace(text: str, old: Any, new: Any) -> None:
    if isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * max(len(new) - len(old), 0) > MAX_STRING:
            raise LimitExceeded(f"replace() would exceed {MAX_STRING} characters")


def _width_checked(filter_func):
    def checked(value, *args, **kwargs):
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and arg > 1000:
                raise LimitExceeded("widths over 1000 are not allowed in messages")
        return filter_func(value, *args, **kwargs)
    checked.__name__ = filter_func.__name__
    return checked


def _replace_checked(filter_func):
    @pass_context
    def checked(context, value, old, new, count=None):
        _estimate_replace(str(value), str(old), str(new))
        return filter_func(context.eval_ctx, value, old, new, count)
    return checked


def _format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise SecurityError("format: give positional or keyword arguments, not both")
    text = str(value)
    _check_percent_format(text)
    return _check_len(text % (kwargs or args))


# --- dates in the subscriber's time zone ----------------------------------------------------

def _zone(context) -> ZoneInfo:
    subscriber = context.get("subscriber")
    name = subscriber.get("timezone") if isinstance(subscriber, dict) else None
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@pass_context
def localtime(context, value: Any, format: str = "%Y-%m-%d %H:%M", tz: str | None = None) -> str:
    """`{{ subscriber.created_at | localtime("%d.%m.%Y %H:%M") }}` in the subscriber's zone."""
    moment = _as_datetime(value)
    if moment is None:
        return "" if value is None or isinstance(value, ChainableUndefined) else str(value)
    try:
        zone = ZoneInfo(tz) if tz else _zone(context)
    except (ZoneInfoNotFoundError, ValueError):
        zone = _zone(context)
    if len(format) > 100:
        raise LimitExceeded("date formats are limited to 100 characters")
    return moment.astimezone(zone).strftime(format)


@pass_context
def localdate(context, value: Any, format: str = "%Y-%m-%d") -> str:
    return localtime(context, value, format)


def steps_budget() -> contextvars.ContextVar[list[int] | None]:
    return _STEPS


__all__ = ["MessageEnvironment", "LimitExceeded", "MessageUndefined", "UndefinedError",
           "SecurityError", "MAX_OUTPUT", "MAX_STEPS", "steps_budget"]
