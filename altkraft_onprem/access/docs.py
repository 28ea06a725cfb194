"""The roles & permissions table of docs/admin.md, generated from PERMISSIONS and BUILTIN_ROLES.

`make docs` (or `python -m altkraft_onprem.access.docs docs/admin.md`) rewrites the table between
the two markers; tests/access/test_docs.py fails when the file and the code differ.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .models import BUILTIN_ROLES, PERMISSIONS

START = "<!-- permissions-table: generated from access/models.py by `make docs` -->"
END = "<!-- /permissions-table -->"


def permissions_table() -> str:
    roles = list(BUILTIN_ROLES)
    lines = ["| permission | allows | " + " | ".join(roles) + " |",
             "|---|---|" + "|".join(":-:" for _ in roles) + "|"]
    for name, what in PERMISSIONS.items():
        marks = " | ".join("✓" if name in BUILTIN_ROLES[role] else "" for role in roles)
        lines.append(f"| `{name}` | {what} | {marks} |")
    return "\n".join(lines)


def current_table(text: str) -> str:
    """The table between the markers in a document ('' when the markers are missing)."""
    if START not in text or END not in text:
        return ""
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def rewrite(path: Path) -> bool:
    """Puts the generated table between the markers; True when the file changed."""
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path}: the markers {START!r} and {END!r} are missing")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    updated = f"{before}{START}\n{permissions_table()}\n{END}{after}"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    for argument in sys.argv[1:] or ["docs/admin.md"]:
        rewrite(Path(argument))
