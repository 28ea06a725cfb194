"""REST routes for users, roles, tokens, the audit log and /me."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from flask import Response, g
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from altkraft_onprem import db
from altkraft_onprem.api import MAX_ID, NON_BLANK, Email, operation
from altkraft_onprem.config import current_settings as settings
from altkraft_onprem.errors import Conflict, Forbidden

from . import service
from .http import confirm_enrolment, secret_key, with_own_code
from .models import PERMISSIONS
from .policy import SIGNED_IN
from .roles import UNCHANGED

TAG_USERS, TAG_ROLES, TAG_TOKENS, TAG_AUDIT = "Users", "Roles", "API tokens", "Audit log"
# A second-factor code is checked as a sign-in's is: wrong ones count as failed logins.
THROTTLED = {429: "Too many failed logins or wrong codes of this user (or from this address) "
             "lately; try again later (security.login_max_failures)"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    role_id: int
    locale: str | None
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    two_factor: bool = Field(description="Signs in with a second factor (TOTP)")


class UserCreate(Strict):
    email: Email
    password: str = Field(min_length=service.MIN_PASSWORD, max_length=1024)
    role: str = Field(max_length=100, description="Role name, e.g. Editor (an unknown name: 404)")
    name: str = Field("", max_length=200)
    locale: str | None = Field(None, pattern="^(en|ru)$")


class UserPatch(Strict):
    name: str | None = Field(None, max_length=200)
    role: str | None = Field(None, max_length=100, description="Role name (an unknown name: 404)")
    locale: str | None = Field(None, pattern="^(en|ru)$")
    is_active: bool | None = None
    password: str | None = Field(None, min_length=service.MIN_PASSWORD, max_length=1024,
                                 description="Ends every signed-in session of the user; their API "
                                 "tokens keep working (revoke them with DELETE /tokens/{token_id})")


class MeOut(BaseModel):
    id: int
    email: str
    role: str
    permissions: list[str]
    token_id: int | None
    locale: str | None
    two_factor: bool = Field(description="Two-factor sign-in is on for this user")
    two_factor_required: bool = Field(description="The user's role requires two-factor sign-in")


class TwoFactorStarted(BaseModel):
    secret: str = Field(description="The TOTP secret (base32): shown once, for an authenticator app")
    otpauth_uri: str = Field(description="The same as an otpauth:// address (what the QR code holds)")


class TwoFactorCode(Strict):
    code: str = Field(min_length=6, max_length=40, description="A current 6-digit code from the "
                      "authenticator app (or, where said, a recovery code)")


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(description="One-time codes: shown once, only their hashes are kept")


class RoleOut(BaseModel):
    id: int
    name: str
    description: str
    builtin: bool
    permissions: list[str]
    require_two_factor: bool = False
    lists: list[int] | None = Field(None, description="The only lists its users see and send to "
                                    "(null: every list)")
    users: int = 0


# One of PERMISSIONS (the service names any unknown one).
Permission = Annotated[str, Field(max_length=100, json_schema_extra={"enum": [*PERMISSIONS]})]


class RoleCreate(Strict):
    name: str = Field(min_length=1, max_length=100, json_schema_extra=NON_BLANK)
    permissions: list[Permission] = Field(default_factory=list, max_length=len(PERMISSIONS))
    description: str = Field("", max_length=2000)
    require_two_factor: bool = False
    lists: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, min_length=1, max_length=10_000, description="Limit the role to these lists (ids): "
        "its users see and send only to them; null or absent: every list")


class RolePatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=100, json_schema_extra=NON_BLANK)
    permissions: list[Permission] | None = Field(None, max_length=len(PERMISSIONS))
    description: str | None = Field(None, max_length=2000)
    require_two_factor: bool | None = Field(None, description="Its users must sign in with a "
                                            "second factor (the only field a built-in role takes)")
    lists: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, min_length=1, max_length=10_000, description="Limit the role to these lists (ids); "
        "null lifts the limit; absent: unchanged")


class TokenOut(BaseModel):
    id: int
    user_id: int
    email: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreate(Strict):
    name: str = Field(min_length=1, json_schema_extra=NON_BLANK, max_length=200)
    user_id: int | None = Field(None, ge=1, le=MAX_ID, description="Another user's id (needs users:manage)")


class TokenCreated(TokenOut):
    token: str = Field(description="The secret: shown once, store it now")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_user_id: int | None
    actor_token_id: int | None
    ip: str
    action: str
    target_type: str
    target_id: str
    details: dict


def _utc(moment: datetime | None) -> datetime | None:
    """Naive times are UTC; times that do not exist in UTC (year 1 at +14:00) are refused."""
    if moment is None or moment.tzinfo is None:
        return moment and moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("a time between years 1 and 9999 in UTC") from None


UtcTime = Annotated[datetime | None, AfterValidator(_utc)]


class AuditQuery(Strict):
    actor: str | None = Field(None, max_length=320)
    action: str | None = Field(None, max_length=100)
    since: UtcTime = Field(None, description="From this time on (ISO 8601; no zone: UTC)")
    until: UtcTime = Field(None, description="Before this time (ISO 8601; no zone: UTC)")
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10**9)


@operation("/me", "GET", permission=SIGNED_IN, summary="Who this token belongs to", tag=TAG_USERS,
           response=MeOut)
def me():
    actor = g.actor
    with db.read(db.get_engine()) as conn:
        state = service.two_factor_status(conn, actor.user_id)
    return {"id": actor.user_id, "email": actor.label, "role": actor.role,
            "permissions": sorted(actor.permissions), "token_id": actor.token_id,
            "locale": actor.locale, "two_factor": state["enabled"],
            "two_factor_required": state["required"]}


@operation("/me/two-factor", "POST", permission=SIGNED_IN, summary="Start setting up two-factor "
           "sign-in: a new secret for an authenticator app (confirm it with a code)", tag=TAG_USERS,
           response=TwoFactorStarted)
def start_two_factor():
    with db.write(db.get_engine()) as conn:
        if service.two_factor_status(conn, g.actor.user_id)["enabled"]:
            raise Conflict("two-factor sign-in is on already", "code")
        secret = service.begin_enrolment(conn, g.actor.user_id, secret_key())
    return {"secret": secret, "otpauth_uri": service.provisioning_uri(secret, g.actor.label)}


@operation("/me/two-factor/confirm", "POST", permission=SIGNED_IN, summary="Turn two-factor "
           "sign-in on with a code of the new secret; answers the recovery codes (shown once)",
           tag=TAG_USERS, body=TwoFactorCode, response=RecoveryCodes, responses=THROTTLED)
def confirm_two_factor(body: TwoFactorCode):
    return {"recovery_codes": confirm_enrolment(g.actor, g.actor.user_id, body.code)}


@operation("/me/two-factor/recovery-codes", "POST", permission=SIGNED_IN, summary="New recovery "
           "codes (the old ones stop working); needs a current code", tag=TAG_USERS,
           body=TwoFactorCode, response=RecoveryCodes, responses=THROTTLED)
def new_recovery_codes(body: TwoFactorCode):
    codes = with_own_code(g.actor.user_id, body.code,
                          lambda conn: service.new_recovery_codes(conn, g.actor, g.actor.user_id))
    return {"recovery_codes": codes}


@operation("/me/two-factor/disable", "POST", permission=SIGNED_IN, summary="Turn two-factor "
           "sign-in off (refused while the role requires it); needs a current code", tag=TAG_USERS,
           body=TwoFactorCode, status=204, responses=THROTTLED)
def disable_two_factor(body: TwoFactorCode):
    with_own_code(g.actor.user_id, body.code,
                  lambda conn: service.disable_two_factor(conn, g.actor, g.actor.user_id))
    return Response(status=204)


@operation("/users/<int:user_id>/two-factor/reset", "POST", permission="users:manage",
           summary="Remove a user's second factor (a lost phone); their sessions end", tag=TAG_USERS,
           status=204)
def reset_two_factor(user_id: int):
    with db.write(db.get_engine()) as conn:
        service.reset_two_factor(conn, g.actor, user_id)
    return Response(status=204)


@operation("/users", "GET", permission="users:manage", summary="List users", tag=TAG_USERS,
           response=list[UserOut])
def list_users():
    with db.read(db.get_engine()) as conn:
        return service.list_users(conn)


@operation("/users", "POST", permission="users:manage", summary="Create a user", tag=TAG_USERS,
           body=UserCreate, response=UserOut, status=201)
def create_user(body: UserCreate):
    with db.write(db.get_engine()) as conn:
        role_id = service.role_id_by_name(conn, body.role)
        user_id = service.create_user(conn, g.actor, body.email, body.password, role_id,
                                      body.name, body.locale)
        return service.get_user(conn, user_id)


@operation("/users/<int:user_id>", "GET", permission="users:manage", summary="One user",
           tag=TAG_USERS, response=UserOut)
def get_user(user_id: int):
    with db.read(db.get_engine()) as conn:
        return service.get_user(conn, user_id)


@operation("/users/<int:user_id>", "PATCH", permission="users:manage", summary="Change a user",
           tag=TAG_USERS, body=UserPatch, response=UserOut)
def patch_user(user_id: int, body: UserPatch):
    with db.write(db.get_engine()) as conn:
        role_id = service.role_id_by_name(conn, body.role) if body.role is not None else None
        service.update_user(conn, g.actor, user_id, name=body.name, role_id=role_id,
                            locale=body.locale, is_active=body.is_active)
        if body.password is not None:
            service.set_password(conn, g.actor, user_id, body.password)
        return service.get_user(conn, user_id)


@operation("/roles", "GET", permission="users:manage", summary="List roles", tag=TAG_ROLES,
           response=list[RoleOut])
def list_roles():
    with db.read(db.get_engine()) as conn:
        return service.list_roles(conn)


@operation("/roles", "POST", permission="users:manage", summary="Create a custom role",
           tag=TAG_ROLES, body=RoleCreate, response=RoleOut, status=201)
def create_role(body: RoleCreate):
    with db.write(db.get_engine()) as conn:
        role_id = service.create_role(conn, g.actor, body.name, body.permissions, body.description,
                                      lists=body.lists)
        service.set_role_requirement(conn, g.actor, role_id, body.require_two_factor)
        return service.get_role(conn, role_id)


@operation("/roles/<int:role_id>", "PATCH", permission="users:manage", summary="Change a custom role",
           tag=TAG_ROLES, body=RolePatch, response=RoleOut)
def patch_role(role_id: int, body: RolePatch):
    with db.write(db.get_engine()) as conn:
        if body.require_two_factor is not None:
            service.set_role_requirement(conn, g.actor, role_id, body.require_two_factor)
        if body.model_fields_set - {"require_two_factor"} or not body.model_fields_set:
            lists = body.lists if "lists" in body.model_fields_set else UNCHANGED
            service.update_role(conn, g.actor, role_id, name=body.name, permissions=body.permissions,
                                description=body.description, lists=lists)
        return service.get_role(conn, role_id)


@operation("/roles/<int:role_id>", "DELETE", permission="users:manage", summary="Delete a custom role",
           tag=TAG_ROLES, status=204)
def delete_role(role_id: int):
    with db.write(db.get_engine()) as conn:
        service.delete_role(conn, g.actor, role_id)
    return Response(status=204)


@operation("/permissions", "GET", permission=SIGNED_IN, summary="Every permission a role can hold",
           tag=TAG_ROLES, response=dict[str, str])
def list_permissions():
    return PERMISSIONS


def _may_manage_tokens_of(user_id: int) -> None:
    if user_id != g.actor.user_id and not g.actor.can("users:manage"):
        raise Forbidden("only users:manage may handle other users' tokens", "user_id")


@operation("/tokens", "GET", permission=SIGNED_IN, summary="API tokens (your own, or all with users:manage)",
           tag=TAG_TOKENS, response=list[TokenOut])
def list_tokens():
    with db.read(db.get_engine()) as conn:
        mine_only = None if g.actor.can("users:manage") else g.actor.user_id
        return service.list_tokens(conn, mine_only)


@operation("/tokens", "POST", permission=SIGNED_IN, summary="Create an API token", tag=TAG_TOKENS,
           body=TokenCreate, response=TokenCreated, status=201)
def create_token(body: TokenCreate):
    user_id = body.user_id or g.actor.user_id
    _may_manage_tokens_of(user_id)
    with db.write(db.get_engine()) as conn:
        token_id, secret = service.create_token(conn, g.actor, user_id, body.name,
                                                settings()["security.api_token_days"])
        return {**service.get_token(conn, token_id), "token": secret}


@operation("/tokens/<int:token_id>", "DELETE", permission=SIGNED_IN, summary="Revoke an API token",
           tag=TAG_TOKENS, status=204)
def revoke_token(token_id: int):
    with db.write(db.get_engine()) as conn:
        _may_manage_tokens_of(service.get_token(conn, token_id)["user_id"])
        service.revoke_token(conn, g.actor, token_id)
    return Response(status=204)


@operation("/audit", "GET", permission="audit:read", summary="Audit log, newest first",
           tag=TAG_AUDIT, query=AuditQuery, response=list[AuditOut])
def audit(query: AuditQuery):
    with db.read(db.get_engine()) as conn:
        return service.audit_entries(conn, **query.model_dump())
