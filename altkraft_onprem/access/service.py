"""The access operations in one namespace, for callers outside the domain (the CLI, the app's
guard, the installer, tests): `from altkraft_onprem.access import service as access`.

The code lives by noun — audit.py, roles.py, users.py, sessions.py, tokens.py, setup.py,
twofactor.py — and those modules are the only code that writes users, roles, sessions, tokens,
second factors and the audit log.
"""
from __future__ import annotations

from .audit import audit_csv, audit_entries, record, record_many
from .models import SESSION_TOUCH_SECONDS
from .roles import (
    create_role,
    delete_role,
    get_role,
    list_roles,
    role_id_by_name,
    sync_builtin_roles,
    update_role,
)
from .sessions import (
    authenticate,
    close_session,
    confirm_enrolment,
    open_session,
    resolve_session,
    touch_session,
    verify_sign_in_code,
)
from .setup import (
    SETUP_KEY,
    complete_setup,
    get_state,
    issue_setup_token,
    put_state,
    setup_needed,
    setup_token_valid,
)
from .tokens import (
    TOKEN_PREFIX,
    create_token,
    get_token,
    list_tokens,
    resolve_token,
    revoke_token,
    touch_token,
)
from .twofactor import (
    begin_enrolment,
    new_recovery_codes,
    pending_secret,
    provisioning_uri,
    recovery_codes_left,
    set_role_requirement,
    sign_in_step,
)
from .twofactor import disable as disable_two_factor
from .twofactor import reset as reset_two_factor
from .twofactor import status as two_factor_status
from .users import (
    MIN_PASSWORD,
    actor_for_user,
    create_user,
    get_user,
    hash_password,
    list_users,
    normalise_email,
    set_password,
    update_user,
    user_id_by_email,
)

__all__ = [
    "MIN_PASSWORD", "SESSION_TOUCH_SECONDS", "SETUP_KEY", "TOKEN_PREFIX", "actor_for_user",
    "audit_csv", "audit_entries", "authenticate", "close_session", "complete_setup",
    "create_role", "create_token", "create_user", "delete_role", "get_role", "get_state",
    "get_token", "get_user", "hash_password", "issue_setup_token", "list_roles", "list_tokens",
    "list_users", "normalise_email", "open_session", "put_state", "record", "record_many",
    "resolve_session",
    "resolve_token", "revoke_token", "role_id_by_name", "set_password", "setup_needed",
    "setup_token_valid", "sync_builtin_roles", "touch_session", "touch_token", "update_role",
    "update_user", "user_id_by_email", "verify_sign_in_code", "begin_enrolment",
    "confirm_enrolment", "new_recovery_codes", "pending_secret", "provisioning_uri", "recovery_codes_left",
    "set_role_requirement", "sign_in_step", "disable_two_factor", "reset_two_factor",
    "two_factor_status",
]
