"""docs/cli.md documents every command and option of `altkraft` and `altkraft-install`."""
from __future__ import annotations

import re
from pathlib import Path

import click

from altkraft_onprem import cli_docs

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
REGENERATE = "regenerate it with `make docs`"


def sections() -> dict[str, str]:
    """'altkraft db upgrade' -> the text under its heading in docs/cli.md."""
    text = DOC.read_text(encoding="utf-8")
    found = {}
    parts = re.split(r"^#{2,4} `([^`]+)`\s*$", text, flags=re.M)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        found[name] = body
    return found


def test_every_command_has_a_section_in_docs_cli():
    documented = sections()
    missing = [path for path in cli_docs.command_paths() if path not in documented]
    assert not missing, f"docs/cli.md lacks {missing}: {REGENERATE}"


def test_every_option_is_documented_under_its_command():
    documented = sections()
    missing = []
    for program, target in cli_docs.PROGRAMS:
        for path, command in cli_docs.walk(cli_docs.load(target), (program,)):
            name = " ".join(path)
            body = documented.get(name, "")
            for param in command.params:
                if isinstance(param, click.Option) and not param.hidden:
                    if not any(f"`{opt}" in body or f", {opt}" in body or f"/{opt}" in body
                               for opt in param.opts):
                        missing.append(f"{name} {param.opts[-1]}")
    assert not missing, f"docs/cli.md lacks options {missing}: {REGENERATE}"


def test_generator_covers_both_programs():
    paths = cli_docs.command_paths()
    assert "altkraft run" in paths and "altkraft user create" in paths
    assert any(path.startswith("altkraft-install ") for path in paths)
