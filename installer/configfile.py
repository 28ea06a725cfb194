"""config.toml: the generated config.example.toml with the installer's answers filled in.

Editing works on the example's text so that every comment stays: a commented default
`#key = value` in the right [section] becomes `key = value`; list-of-tables settings
([[smtp.relays]], [[dkim.keys]]) are appended as tables at the end.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from altkraft_onprem import config as config_module
from altkraft_onprem.config_docs import _toml_value, render_example

toml_value = _toml_value


def set_value(text: str, key: str, value: Any) -> str:
    """Sets a scalar setting in config text (uncommenting its line in the example)."""
    section, _, name = key.rpartition(".")
    lines = text.splitlines()
    current = ""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = stripped.strip("[]")
            continue
        if stripped.startswith(("[[", "#[[")):
            current = None          # inside list-of-tables examples: not our key
            continue
        if current != section:
            continue
        bare = stripped.lstrip("#").strip()
        if bare.split("=", 1)[0].strip() == name and "=" in bare:
            lines[index] = f"{name} = {toml_value(value)}"
            return "\n".join(lines) + "\n"
    raise KeyError(f"{key} is not in the configuration template")


def append_table(text: str, key: str, item: dict[str, Any]) -> str:
    body = "".join(f"{name} = {toml_value(value)}\n" for name, value in item.items())
    return text.rstrip("\n") + f"\n\n[[{key}]]\n{body}"


def render(values: dict[str, Any], tables: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """config.example.toml (from `altkraft config example`) with values and tables filled in."""
    text = render_example()
    for key, value in values.items():
        text = set_value(text, key, value)
    for key, items in (tables or {}).items():
        for item in items:
            text = append_table(text, key, item)
    return text


def validate(text: str) -> config_module.Settings:
    """Loads config text exactly as the service will; raises ConfigError naming the key."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
        handle.write(text)
    try:
        return config_module.load(handle.name, environ={})
    finally:
        os.unlink(handle.name)


def write_atomic(path: Path, data: str | bytes, mode: int) -> None:
    """Replaces a file in one step with the given mode (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        if path.exists():
            stat = path.stat()
            try:
                os.fchown(fd, stat.st_uid, stat.st_gid)
            except PermissionError:
                pass
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
