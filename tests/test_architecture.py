"""The house (docs/architecture.md): imports point down the declared layers, and imports of
our own code inside functions stay rare.

The layer order is written once, in pyproject.toml's import-linter contracts; `lint-imports`
checks it (imports inside functions included) and these tests read the same list.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "altkraft_onprem"
# Function-local imports of our own code buy CLI start time or keep a forked child lean; they
# are not a way around a cycle. This many at most, outside the CLI modules and the roots.
MAX_LOCAL_IMPORTS = 30


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c.get("id") == contract_id)


def _layers() -> list[tuple[list[str], bool]]:
    """Top-level modules per layer, highest first, and whether the layer's modules are
    independent of each other (`a | b`)."""
    out = []
    for line in _contract("layers")["layers"]:
        independent = "|" in line
        names = [name.strip().strip("()") for name in line.replace("|", ":").split(":")]
        out.append((names, independent))
    return out


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _local_imports() -> list[tuple[str, int, str]]:
    """(module, line, imported module) for each import of our code inside a function."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = _module_name(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                for target in _targets(node, package):
                    if target.split(".")[0] == "altkraft_onprem":
                        found.append((module, node.lineno, target))
    return sorted(set(found))


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            return [".".join(base + ([node.module] if node.module else []))]
        return [node.module or ""]
    return []


def _is_cli_or_root(module: str, roots: set[str]) -> bool:
    parts = module.split(".")
    return parts[-1] in ("cli", "cli_support") or (len(parts) == 2 and parts[1] in roots)


def test_the_layer_contracts_hold():
    """`lint-imports` (as `make test` runs it): a broken contract names the import chain."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_every_top_level_module_has_its_layer_in_the_docs():
    """docs/architecture.md draws the same layers the contract enforces."""
    section = (ROOT / "docs" / "architecture.md").read_text().partition("## The house")[2]
    section = section.partition("\n## ")[0]
    missing = [name for names, _ in _layers() for name in names if name not in section]
    assert not missing, f"docs/architecture.md (The house) does not place: {missing}"


def test_no_import_inside_a_function_points_up():
    """import-linter sees these too; this says which function and line, in layer terms."""
    rank, independent = {}, {}
    for position, (names, apart) in enumerate(_layers()):
        for name in names:
            rank[name], independent[name] = position, apart
    upward = []
    for module, line, target in _local_imports():
        source_top, target_top = module.split(".")[1], target.split(".")[1] if "." in target else ""
        if not target_top or source_top == target_top or source_top not in rank:
            continue
        if rank[target_top] < rank[source_top] or (rank[target_top] == rank[source_top]
                                                   and independent[source_top]):
            upward.append(f"{module}:{line} imports {target}")
    assert not upward, "imports inside functions that point up:\n" + "\n".join(upward)


def test_imports_inside_functions_are_few():
    roots = set(_layers()[0][0])
    local = [f"{module}:{line} -> {target}" for module, line, target in _local_imports()
             if not _is_cli_or_root(module, roots)]
    assert len(local) <= MAX_LOCAL_IMPORTS, (
        f"{len(local)} imports of our own code inside functions (at most {MAX_LOCAL_IMPORTS} "
        "outside the CLI modules and the composition roots); hoist them, or say why:\n"
        + "\n".join(local))
