"""schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by test_schemathesis.py).

Two generated calls would lock the run out rather than test anything: revoking the run's own
token, and changing the run's own user (a new role or is_active=false turns every later call
into 401/403). Their ids come from the environment; every other call goes through.
"""
from __future__ import annotations

import os

import schemathesis


@schemathesis.hook
def filter_case(context, case) -> bool:
    params = case.path_parameters or {}
    if case.method.upper() == "DELETE" and case.path.endswith("/tokens/{token_id}"):
        return str(params.get("token_id")) != os.environ["AKTEST_OWN_TOKEN_ID"]
    if case.method.upper() == "PATCH" and case.path.endswith("/users/{user_id}"):
        return str(params.get("user_id")) != os.environ["AKTEST_OWN_USER_ID"]
    return True
