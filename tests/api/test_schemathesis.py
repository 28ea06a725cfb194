"""schemathesis (CLI) against /api/v1/openapi.json of the real running service.

Two runs with a valid Administrator token, each with its own time budget:

- invalid inputs (negative mode, up to 30 per operation): no 5xx anywhere, and answers that
  match the document (status codes, content types, response schemas);
- valid inputs (positive mode, up to 10 per operation, plus the coverage phase's boundary values):
  the same, and `positive_data_acceptance`: a request the document calls valid is accepted
  (2xx), or refused only for what the document cannot say (404 for an id or a name that names
  nothing, 409 for a clash with existing data or state, 403 for a built-in role or template;
  tests/api/schemathesis.toml). A 400 or 422 there means the document is looser than the server,
  except for the few rules JSON Schema cannot state, which schemathesis_hooks.py lets through
  one by one (the test prints how many of each it saw).

AKTEST_SCHEMATHESIS_ARGS adds arguments to both runs, e.g. "--include-path-regex /campaigns" to
look at one area. Revoking the run's own token and changing its own user are filtered out by
schemathesis_hooks.py, because they lock the run out instead of testing anything.

One schemathesis worker: with several threads, CPython 3.11's ast module (used by hypothesis to
describe filters) fails with "AST constructor recursion depth mismatch" (cpython gh-106905).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.conftest import ARTIFACTS, DB_KIND, start_service

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_schema_conformance"]


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env, extra_env={"ALTKRAFT_SERVER__WORKERS": "2"})
    yield server
    server.stop()


def run_schemathesis(env, service, tmp_path, name: str, *, mode: str, checks: list[str],
                     max_examples: int, extra: tuple[str, ...] = ()) -> None:
    token = env.token("Administrator")
    headers = {"Authorization": f"Bearer {token}"}
    me = requests.get(service.url + "/api/v1/me", headers=headers, timeout=10).json()
    document = requests.get(service.url + "/api/v1/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
                   "PYTHONPATH": str(ROOT), "AKTEST_OWN_TOKEN_ID": str(me["token_id"]),
                   "AKTEST_OWN_USER_ID": str(me["id"]), "NO_COLOR": "1",
                   "AKTEST_SCHEMATHESIS_ALLOWED": str(tmp_path / "allowed.txt")}
    # A hang guard, not a speed test: generous per operation, so that a loaded CI host (two
    # cores shared with the rest of the suite) does not turn slowness into a failure.
    budget = 120 + 8 * operations
    started = time.monotonic()
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(Path(__file__).with_name("schemathesis.toml")), "run",
        f"{service.url}/api/v1/openapi.json", "--url", service.url,
        "-H", f"Authorization: Bearer {token}", "--checks", ",".join(checks), "--mode", mode,
        "--max-examples", str(max_examples), "--workers", "1", "--seed", "1",
        "--generation-database", "none", "--request-timeout", "30", "--report-dir", str(tmp_path),
        "--output-truncate", "false", *extra, *os.environ.get("AKTEST_SCHEMATHESIS_ARGS", "").split()]
    try:
        result = subprocess.run(command, env=environment, cwd=tmp_path, capture_output=True,
                                text=True, timeout=budget)
    except subprocess.TimeoutExpired as exc:
        ARTIFACTS.mkdir(exist_ok=True)
        output = exc.stdout or b""            # bytes even with text=True (subprocess quirk)
        (ARTIFACTS / f"schemathesis-{DB_KIND}-{name}.txt").write_text(
            output.decode(errors="replace") if isinstance(output, bytes) else output)
        pytest.fail(f"schemathesis {name} took more than {budget} s for {operations} operations "
                    f"(output so far in test-artifacts/schemathesis-{DB_KIND}-{name}.txt)")
    print(f"schemathesis {name}: {operations} operations in {time.monotonic() - started:.0f} s "
          f"(budget {budget} s);", "; ".join(line.strip() for line in result.stdout.splitlines()
                                           if "(in " in line or "generated," in line))
    allowed = tmp_path / "allowed.txt"
    if allowed.exists():        # 422s for rules the document cannot state (schemathesis_hooks.py)
        kinds = Counter(line.split(": ", 1)[0] + ": " + json.loads(line.split(": ", 1)[1])
                        .get("detail", "")[:60] for line in allowed.read_text().splitlines())
        print("allowed by the hooks' rules:", *(f"{n} x {kind}" for kind, n in kinds.items()),
              sep="\n  ")
    for stale in ARTIFACTS.glob(f"schemathesis-{DB_KIND}-{name}*"):
        stale.unlink()
    if result.returncode != 0:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"schemathesis-{DB_KIND}-{name}.txt").write_text(result.stdout + result.stderr)
        (ARTIFACTS / f"schemathesis-{DB_KIND}-{name}-service.log").write_text(service.log.read_text())
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    # The run still holds its identity: nothing locked it out half-way.
    assert requests.get(service.url + "/api/v1/me", headers=headers,
                        timeout=10).json()["role"] == "Administrator"


@pytest.mark.slow
def test_schemathesis_invalid_inputs_find_no_server_errors(env, service, tmp_path):
    run_schemathesis(env, service, tmp_path, "negative", mode="negative", checks=CONFORMANCE,
                     max_examples=30)


@pytest.mark.slow
def test_schemathesis_valid_inputs_are_accepted(env, service, tmp_path):
    # Text with NUL (U+0000) is refused everywhere (PostgreSQL cannot store it; docs/api.md says
    # so once rather than every string's schema): valid data has none.
    run_schemathesis(env, service, tmp_path, "positive", mode="positive",
                     checks=[*CONFORMANCE, "positive_data_acceptance"], max_examples=10,
                     extra=("--generation-allow-x00", "false"))
