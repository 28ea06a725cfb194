"""schemathesis (CLI) against /api/v1/openapi.json of the real running service.

With a valid Administrator token, up to 30 generated inputs per operation (valid and invalid):
no 5xx anywhere, and answers that match the document (status codes, content types, response
schemas). Revoking the run's own token and changing its own user are filtered out by
schemathesis_hooks.py, because they lock the run out instead of testing anything.

One schemathesis worker: with several threads, CPython 3.11's ast module (used by hypothesis to
describe filters) fails with "AST constructor recursion depth mismatch" (cpython gh-106905).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ARTIFACTS, start_service

ROOT = Path(__file__).resolve().parents[2]
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def service(env):
    server = start_service(env, extra_env={"ALTKRAFT_SERVER__WORKERS": "2"})
    yield server
    server.stop()


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(env, service, tmp_path):
    token = env.token("Administrator")
    me = requests.get(service.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                      timeout=10).json()
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
                   "PYTHONPATH": str(ROOT), "AKTEST_OWN_TOKEN_ID": str(me["token_id"]),
                   "AKTEST_OWN_USER_ID": str(me["id"]), "NO_COLOR": "1"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run",
         f"{service.url}/api/v1/openapi.json", "--url", service.url,
         "-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "--max-examples", "30",
         "--workers", "1", "--seed", "1", "--generation-database", "none",
         "--request-timeout", "30", "--report-dir", str(tmp_path), "--output-truncate", "false"],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    for stale in ARTIFACTS.glob("schemathesis*"):
        stale.unlink()
    if result.returncode != 0:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "schemathesis.txt").write_text(result.stdout + result.stderr)
        (ARTIFACTS / "schemathesis-service.log").write_text(service.log.read_text())
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    # The run still holds its identity: nothing locked it out half-way.
    assert requests.get(service.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).json()["role"] == "Administrator"
