"""Users, roles, sessions, API tokens, audit log: tables and the permission vocabulary."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from altkraft_onprem.db import metadata
from altkraft_onprem.db.types import UTCDateTime
from altkraft_onprem.i18n import N_

# Every permission a role can hold: name -> what it allows (N_: translated where shown).
# A route declares one of these.
PERMISSIONS: dict[str, str] = {
    "dashboard:read": N_("See the dashboard"),
    "lists:read": N_("See lists, subscribers and segments"),
    "lists:write": N_("Create and change lists, subscribers, fields and segments"),
    "subscribers:import": N_("Import subscribers"),
    "subscribers:export": N_("Export subscribers and personal data"),
    "subscribers:delete": N_("Delete and restore subscribers, manage the suppression list"),
    "messages:read": N_("See messages and templates"),
    "messages:write": N_("Create and change messages, templates and media"),
    "campaigns:read": N_("See campaigns"),
    "campaigns:write": N_("Create and change campaigns"),
    "campaigns:send": N_("Start, pause, resume and cancel campaigns; send tests"),
    "automation:read": N_("See workflows, who is in them, webhooks and their deliveries"),
    "automation:write": N_("Create, change, publish and pause workflows, enroll people; create "
                           "and change webhooks (publishing a workflow that sends email also "
                           "needs campaigns:send)"),
    "transactional:send": N_("Send single transactional emails (receipts, password resets) "
                             "through POST /api/v1/transactional"),
    "reports:read": N_("See reports"),
    "deliverability:read": N_("See sending domains and DNS checks"),
    "settings:manage": N_("Change the settings made in the app: sending domains and their DKIM "
                          "keys, relays, default sender, double opt-in; run the DNS checks"),
    "users:manage": N_("Manage users, roles and API tokens of others"),
    "audit:read": N_("See and export the audit log"),
    "metrics:read": N_("Read the Prometheus metrics at /metrics with an API token (give a "
                       "scraper its own user and role)"),
}

_READ = {"dashboard:read", "lists:read", "messages:read", "campaigns:read", "automation:read",
         "reports:read", "deliverability:read"}

# Built-in roles: fixed permission sets, cannot be edited or deleted.
BUILTIN_ROLES: dict[str, set[str]] = {
    "Administrator": set(PERMISSIONS),
    "Manager": set(PERMISSIONS) - {"settings:manage", "users:manage", "metrics:read"},
    "Editor": _READ | {"lists:write", "subscribers:import", "messages:write", "campaigns:write",
                       "automation:write"},
    "Analyst": _READ | {"subscribers:export"},
    "Viewer": _READ - {"reports:read"},
}



@dataclass(frozen=True)
class Actor:
    """Who does something: a signed-in user, an API token, or the system (CLI, jobs)."""

    user_id: int | None
    label: str                      # email, or "system"
    permissions: frozenset[str]
    token_id: int | None = None
    ip: str = ""
    role: str = ""
    locale: str | None = None
    # A signed-in user whose role requires two-factor sign-in and who has not enrolled yet:
    # the UI sends them to the enrolment page until they have.
    must_enrol: bool = False
    # The lists a role limited to some lists may see and send to (access/scope.py); None: all.
    lists: frozenset[int] | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions


def system_actor(label: str = "system") -> Actor:
    """The host's operator (CLI) and background jobs: every permission."""
    return Actor(user_id=None, label=label, permissions=frozenset(PERMISSIONS), role="Administrator")


roles = Table(
    "roles", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("builtin", Boolean, nullable=False, default=False),
    Column("permissions", Text, nullable=False, default="[]"),  # JSON list of names
    Column("created_at", UTCDateTime(), nullable=False),
    # Its users sign in with a second factor (TOTP); one without is made to enrol first.
    Column("require_two_factor", Boolean, nullable=False, default=False, server_default=false()),
    # JSON list of list ids the role is limited to (access/scope.py); NULL: every list.
    Column("list_scope", Text, nullable=True),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("password_hash", String(200), nullable=False),
    Column("role_id", Integer, ForeignKey("roles.id"), nullable=False),
    Column("locale", String(10), nullable=True),
    Column("is_active", Boolean, nullable=False, default=True),
    # Changes on every password change: sessions and forms bound to the old one stop working.
    Column("auth_stamp", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime(), nullable=True),
    # Two-factor sign-in (access/twofactor.py): the TOTP secret encrypted with a key derived from
    # the app's secret key, the one being enrolled, and the last time step accepted.
    Column("totp_secret", String(300), nullable=True),
    Column("totp_pending", String(300), nullable=True),
    Column("totp_enabled_at", UTCDateTime(), nullable=True),
    Column("totp_last_step", BigInteger, nullable=True),
)

recovery_codes = Table(
    "recovery_codes", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),   # secret_digest of the code
    Column("created_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
)

user_sessions = Table(
    "user_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),   # sha256 of the cookie's session id
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("auth_stamp", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("ip", String(64), nullable=False, default=""),
    Column("user_agent", String(300), nullable=False, default=""),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),       # shown in lists to recognise a token
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=False, index=True),
    Column("actor_user_id", Integer, nullable=True, index=True),   # no FK: outlives users
    Column("actor_token_id", Integer, nullable=True),
    Column("actor", String(320), nullable=False),                  # email or "system"
    Column("ip", String(64), nullable=False, default=""),
    Column("action", String(100), nullable=False, index=True),     # "user.create"
    Column("target_type", String(50), nullable=False, default=""),
    Column("target_id", String(100), nullable=False, default=""),
    Column("details", Text, nullable=False, default="{}"),        # JSON
)

login_attempts = Table(
    "login_attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("email", String(320), nullable=False),
    Column("ip", String(64), nullable=False),
    Column("success", Boolean, nullable=False),
    Index("ix_login_attempts_email_at", "email", "at"),
    Index("ix_login_attempts_ip_at", "ip", "at"),
)

app_state = Table(
    "app_state", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


# A session's or token's last use is written at most this often (not on every request).
SESSION_TOUCH_SECONDS = 60


def secret_digest(secret: str) -> str:
    """The stored form of a secret we hand out (session id, API token, setup link): only its
    SHA-256 is kept, so a copy of the database signs nobody in."""
    return hashlib.sha256(secret.encode()).hexdigest()
