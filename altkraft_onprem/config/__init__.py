"""Settings: loaded defaults -> TOML file -> ALTKRAFT_* environment, validated against the
table declared once in declared.py (`SETTINGS`; the value kinds are in values.py).

Environment overrides: `ALTKRAFT_SECTION__KEY` (top-level keys: `ALTKRAFT_KEY`); a list
or list-of-tables setting takes a JSON value.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .declared import BY_KEY, SETTINGS
from .values import ENV_PREFIX

CONFIG_ENV = "ALTKRAFT_CONFIG"


class ConfigError(Exception):
    """A setting has a wrong value; str() is the one line shown to the operator."""

    def __init__(self, key: str, value: Any, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"config error: {key} = {value!r}: expected {expected}")


class Settings(Mapping[str, Any]):
    """Validated settings by dotted key: settings["server.bind"]."""

    def __init__(self, values: dict[str, Any], source: str | None = None):
        self._values = values
        self.source = source

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def data_dir(self) -> Path:
        return Path(self["data_dir"]).expanduser().resolve()

    @property
    def database_url(self) -> str:
        return self["database.url"] or f"sqlite:///{self.data_dir / 'altkraft.db'}"

    @property
    def secret_key_path(self) -> Path:
        return Path(self["secret_key_file"]) if self["secret_key_file"] else self.data_dir / "secret_key"

    @property
    def https(self) -> bool:
        return self["server.public_url"].startswith("https://")

    def replace(self, **dotted: Any) -> Settings:
        """A copy with some values changed (keys use __ for dots); validated like a file."""
        overrides = {k.replace("__", "."): v for k, v in dotted.items()}
        return load(overrides=overrides, base=self._values)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and key not in BY_KEY:
            yield from _flatten(value, key + ".")
        else:
            yield key, value


def _apply(values: dict[str, Any], key: str, raw: Any, where: str) -> None:
    setting = BY_KEY.get(key)
    if setting is None:
        raise ConfigError(key, raw, f"a known setting ({where} has an unknown key; see config.example.toml)")
    try:
        values[key] = setting.parse(raw)
    except ValueError as exc:
        raise ConfigError(key, raw, str(exc)) from None


def load(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None) -> Settings:
    """Defaults -> TOML file (path or $ALTKRAFT_CONFIG) -> ALTKRAFT_* environment -> overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = dict(base) if base is not None else {s.key: s.default for s in SETTINGS}
    path = path or environ.get(CONFIG_ENV) or None
    if path is not None and base is None:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError("--config", str(path), "an existing TOML file") from None
        except PermissionError:
            raise ConfigError("--config", str(path), "a file readable by this user") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(path), f"valid TOML ({exc})") from None
        for key, raw in _flatten(document):
            _apply(values, key, raw, str(path))
    if base is None:
        by_env = {s.env_name: s.key for s in SETTINGS}
        for name, raw in environ.items():
            if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
                continue
            if name not in by_env:
                raise ConfigError(name, raw, "a known ALTKRAFT_ variable (see config.example.toml)")
            _apply(values, by_env[name], raw, "the environment")
    for key, raw in (overrides or {}).items():
        _apply(values, key, raw, "overrides")
    return Settings(values, source=str(path) if path else None)


def read_secret_key(settings: Settings) -> bytes:
    """The key that signs sessions, CSRF tokens and links; a missing, unreadable or short
    file is a ConfigError naming secret_key_file."""
    path = settings.secret_key_path
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError("secret_key_file", str(path),
                          "an existing file (`altkraft run` or `altkraft-install` creates it)") from None
    except PermissionError:
        raise ConfigError("secret_key_file", str(path), "a file readable by the service user") from None
    if len(key) < 32:
        raise ConfigError("secret_key_file", str(path), "at least 32 bytes of key material")
    return key


# app.extensions key of the function (file settings -> settings in force) that layers the
# settings made on the Settings page over the file's (installed by create_app).
LAYER = "altkraft.settings_layer"


def current_settings() -> Settings:
    """The settings in force for the app handling this request or job: the config file's,
    with the settings made on the Settings page layered over them."""
    from flask import current_app

    base = current_app.config["ALTKRAFT_SETTINGS"]
    layer = current_app.extensions.get(LAYER)
    return layer(base) if layer is not None else base
