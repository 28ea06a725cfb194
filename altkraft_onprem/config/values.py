"""The kinds of value a setting can have: each parser returns the typed value or raises
ValueError(what was expected); `Setting` is one declared setting. Package-private: the
declared table (declared.py) and the loader (__init__.py) use them.
"""
from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "ALTKRAFT_"


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("an integer")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("an integer") from None
    if not isinstance(value, int):
        raise ValueError("an integer")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("a number") from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return value.lower() in {"1", "true", "yes", "on"}
    raise ValueError("true or false")


def _host_port(value: Any) -> str:
    text = _str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("HOST:PORT, e.g. 127.0.0.1:8080")
    return text


def _host_port_or_empty(value: Any) -> str:
    """HOST:PORT, or empty (switched off)."""
    return _host_port(value) if _str(value).strip() else ""


def _http_url(value: Any) -> str:
    text = _str(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("an http:// or https:// URL")
    return text


def _optional_http_url(value: Any) -> str:
    """An http(s) URL, or empty for "not used"."""
    return "" if _str(value).strip() == "" else _http_url(value)


def _database_url(value: Any) -> str:
    text = _str(value)
    if text == "":
        return text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except ArgumentError:
        raise ValueError("sqlite:///PATH or postgresql://USER@HOST/DB") from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ValueError("sqlite:///PATH or postgresql://USER@HOST/DB")
    return text


def _redis_url(value: Any) -> str:
    text = _str(value)
    if urlsplit(text).scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("redis://HOST:PORT/DB")
    return text


def _queue_name(value: Any) -> str:
    text = _str(value)
    if not text or len(text) > 64 or not all(c.isalnum() or c in "-_." for c in text):
        raise ValueError("1-64 letters, digits, '-', '_' or '.'")
    return text


def _feedback_id_part(value: Any) -> str:
    text = _str(value)
    if len(text) > 64 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in text):
        raise ValueError("up to 64 ASCII letters, digits, '-', '_' or '.' (':' separates the parts)")
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(" or ".join(repr(c) for c in choices))
        return value
    return parse


def _positive(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        parsed = parse(value)
        if parsed <= 0:
            raise ValueError("a number greater than 0")
        return parsed
    return check


def _non_negative(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        parsed = parse(value)
        if parsed < 0:
            raise ValueError("a number of 0 or more")
        return parsed
    return check


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError('a list of strings, e.g. ["a", "b"]') from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError('a list of strings, e.g. ["a", "b"]')
    return value


def _choice_list(*choices: str) -> Callable[[Any], list[str]]:
    def parse(value: Any) -> list[str]:
        found = _str_list(value)
        wrong = [v for v in found if v not in choices]
        if wrong:
            raise ValueError(f"codes among {', '.join(choices)} ({', '.join(map(repr, wrong))} is not one)")
        return found
    return parse


def _positive_int_list(value: Any) -> list[int]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("a list of whole numbers greater than 0, e.g. [50, 100, 200]") from None
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError("a list of whole numbers greater than 0, e.g. [50, 100, 200]")
    return value


def _iso_date(value: Any) -> str:
    text = _str(value).strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("a date YYYY-MM-DD") from None


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(_str(value).strip()))
    except ValueError:
        raise ValueError("an IP address, e.g. 192.0.2.25") from None


def _ip_list(value: Any) -> list[str]:
    items = _str_list(value)
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(f'a list of IP addresses, e.g. ["192.0.2.25"] ({item!r} is not one)') from None
    return items


def _network_list(value: Any) -> list[str]:
    items = _str_list(value)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f'a list of networks, e.g. ["10.0.0.0/8"] ({item!r} is not one)') from None
    return items


def _nameserver_list(value: Any) -> list[str]:
    items = _str_list(value)
    for item in items:
        host, _, port = item.strip("[").rpartition("]:") if item.startswith("[") else (
            item.rpartition(":") if item.count(":") == 1 else (item, "", "53"))
        try:
            ipaddress.ip_address(host)
            if not 0 < int(port) < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(f'a list of IP or IP:PORT, e.g. ["192.0.2.53:53"] ({item!r} is not one)') from None
    return items


@dataclass(frozen=True)
class Setting:
    key: str                      # dotted: "server.bind"; top level: "data_dir"
    parse: Callable[[Any], Any]
    default: Any
    help: str
    type_name: str = "string"
    example: Any = None           # shown commented out in config.example.toml when default is empty
    item_fields: tuple[Setting, ...] = field(default=())  # for [[section.list]] tables

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.key.upper().replace(".", "__")


def _tables(fields: tuple[Setting, ...], what: str) -> Callable[[Any], list[dict]]:
    known = {f.key: f for f in fields}

    def parse(value: Any) -> list[dict]:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError(f"a JSON list of {what} tables") from None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError(f"a list of {what} tables")
        items = []
        for index, raw in enumerate(value):
            item = {}
            for name in raw:
                if name not in known:
                    raise ValueError(f"known keys in item {index} ({', '.join(known)}), not {name!r}")
            for name, spec in known.items():
                if name not in raw:
                    if spec.default is REQUIRED:
                        raise ValueError(f"item {index} to have {name!r}")
                    item[name] = spec.default
                    continue
                try:
                    item[name] = spec.parse(raw[name])
                except ValueError as exc:
                    raise ValueError(f"item {index}: {name} to be {exc}") from None
            items.append(item)
        return items
    return parse


REQUIRED = object()


def _item(key: str, parse: Callable, default: Any, help: str, type_name: str = "string") -> Setting:
    return Setting(key, parse, default, help, type_name)
