"""Every third-party module the shipped code imports is a declared dependency.

A module that happens to be installed in a developer's venv but is missing from
pyproject.toml works on that machine and breaks on a fresh install: this test
catches it before CI or a customer does.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("altkraft_onprem", "altkraft_installer")
OWN = {"altkraft_onprem", "altkraft_installer"}


def _imported_top_level_modules(package: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def _declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0])
            for requirement in project["dependencies"]}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_shipped_code_imports_only_declared_dependencies():
    """Code that imports a package must declare it, not rely on something else pulling it in."""
    declared = _declared_distributions()
    providers = metadata.packages_distributions()
    # Import names that differ from their distribution, or that a declared framework
    # guarantees as part of its own API (Flask is built on werkzeug and itsdangerous).
    companions = {"werkzeug": "flask", "itsdangerous": "flask", "markupsafe": "jinja2",
                  "babel": "flask-babel", "dns": "dnspython", "dkim": "dkimpy",
                  "PIL": "pillow", "jinja2": "jinja2"}
    missing = []
    for package in SHIPPED:
        for module, where in _imported_top_level_modules(ROOT / package).items():
            if module in OWN or module in sys.stdlib_module_names or module in companions:
                continue
            distributions = {_normalise(d) for d in providers.get(module, [])}
            if not distributions & declared:
                missing.append(f"{module} ({where.relative_to(ROOT)})")
    assert not missing, "imported but not declared in pyproject.toml: " + ", ".join(missing)


def test_the_editable_install_prints_no_setuptools_warning(tmp_path):
    """`make run` installs the project editable; a newcomer's first command must not greet them
    with a setuptools warning. Builds the editable wheel as pip does (the PEP 660 hook of
    setuptools' backend), from a copy of the sources, and watches every warning."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", "node_modules", ".git", "build", "dist", "*.egg-info", "test-artifacts",
        "__pycache__", "altkraft-data", "vendor"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build = ("import setuptools.build_meta as backend, sys; "
             "print(backend.build_editable(sys.argv[1]))")
    result = subprocess.run([sys.executable, "-W", "always", "-c", build, str(wheels)],
                            cwd=source, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(".whl")
    warned = re.findall(r"^\S+\.py:\d+: \w+: .*$", result.stderr, re.M)   # file:line: Category: text
    assert not warned, "\n".join(warned)
