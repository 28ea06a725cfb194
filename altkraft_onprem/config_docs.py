"""config.example.toml and docs/configuration.md, generated from config.declared.SETTINGS."""
from __future__ import annotations

import textwrap
from typing import Any

import tomli_w

from .config.declared import SETTINGS
from .config.values import REQUIRED, Setting

HEADER = """\
# ALTKRAFT On-Premise configuration.
#
# Every setting is listed here with its default; a commented-out line keeps the default.
# Load order: built-in defaults -> this file (--config or ALTKRAFT_CONFIG) -> environment
# variables ALTKRAFT_SECTION__KEY (top-level keys: ALTKRAFT_KEY; lists take JSON).
# Generated from altkraft_onprem/config/declared.py by `altkraft config example`: edit that, not this.
#
# Secrets never go in this file: passwords and keys are named by *_file settings that point
# at files readable by the service user only (mode 0600).
"""


def _toml_value(value: Any) -> str:
    """One line of TOML (tomli_w writes arrays over several lines, which cannot be commented out)."""
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return tomli_w.dumps({"v": value}).strip()[len("v = "):]


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text, 92)]


def _setting_lines(setting: Setting, name: str) -> list[str]:
    lines = _comment(f"{setting.help} ({setting.type_name}; env {setting.env_name})")
    if setting.item_fields:
        for item in setting.example or [{}]:
            lines.append(f"#[[{setting.key}]]")
            for spec in setting.item_fields:
                required = " (required)" if spec.default is REQUIRED else ""
                lines += _comment(f"{spec.help}{required}", "")
                value = item.get(spec.key, spec.default)
                lines.append(f"#{spec.key} = {_toml_value(value)}")
        return lines
    if setting.default in ("", None) and setting.example is not None:
        lines.append(f"#{name} = {_toml_value(setting.example)}")
    else:
        lines.append(f"#{name} = {_toml_value(setting.default)}")
    return lines


def render_example() -> str:
    out = [HEADER]
    section = None
    # One [section] header per section (TOML refuses a second one), and list-of-tables
    # settings last, so that no scalar follows a [[table]] and lands inside it.
    sections = list(dict.fromkeys(s.key.rpartition(".")[0] for s in SETTINGS if not s.item_fields))
    ordered = sorted(SETTINGS, key=lambda s: len(sections) if s.item_fields
                     else sections.index(s.key.rpartition(".")[0]))
    for setting in ordered:
        head, _, name = setting.key.rpartition(".")
        if setting.item_fields:
            head, name = setting.key, setting.key
        if head != section and not setting.item_fields:
            out.append(f"\n[{head}]" if head else "")
            section = head
        elif setting.item_fields:
            out.append("")
            section = None
        out += _setting_lines(setting, name)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_markdown() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `altkraft_onprem/config/declared.py` by `altkraft config docs`; a test fails when",
        "this page and the code disagree. Load order: defaults -> TOML file (`--config` or",
        "`ALTKRAFT_CONFIG`) -> environment (`ALTKRAFT_SECTION__KEY`). A wrong value stops start-up",
        "with one line naming the key, the value and what is expected (exit status 2).",
        "",
        "| setting | type | default | environment | meaning |",
        "|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        default = "[]" if s.item_fields else _toml_value(s.default)
        out.append(f"| `{s.key}` | {s.type_name} | `{default}` | `{s.env_name}` | {s.help} |")
        for f in s.item_fields:
            default = "required" if f.default is REQUIRED else f"`{_toml_value(f.default)}`"
            out.append(f"| `{s.key}[].{f.key}` | {f.type_name} | {default} | (JSON in `{s.env_name}`) | {f.help} |")
    return "\n".join(out) + "\n"
