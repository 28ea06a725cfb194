"""Two-factor sign-in: TOTP (RFC 6238, through pyotp) with one-time recovery codes.

A user enrols by scanning a QR code (or typing the secret) and confirming one code; then a
password alone no longer signs them in. The secret is stored encrypted (Fernet, with a key
derived from the app's secret key: a copy of the database alone cannot produce codes); the
recovery codes are shown once and stored as SHA-256 (they carry 80 random bits). A code is
accepted once: the last accepted time step is kept. A role may require two-factor sign-in;
its users who have not enrolled are made to at their next sign-in (and on their next page).
Callers pass the app's secret key (`key`): services take plain values.
"""
from __future__ import annotations

import base64
import hmac
import secrets
import time

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, delete, func, insert, select, update

from altkraft_onprem.db.types import utcnow
from altkraft_onprem.errors import Conflict, NotFound, ServiceError

from .audit import record
from .models import Actor, recovery_codes, roles, secret_digest, user_sessions, users
from .roles import get_role

ISSUER = "ALTKRAFT"
RECOVERY_CODES = 10
# Codes of the step before and after the current one are accepted too (clock drift, typing).
VALID_WINDOW = 1
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"     # no 0/o, 1/l/i: read aloud, typed by hand


def _fernet(key: bytes) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"altkraft totp secrets").derive(key)
    return Fernet(base64.urlsafe_b64encode(derived))


def _seal(key: bytes, secret: str) -> str:
    return _fernet(key).encrypt(secret.encode()).decode()


def _open(key: bytes, sealed: str) -> str:
    try:
        return _fernet(key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ServiceError("the two-factor secret cannot be read: the service's secret key has "
                           "changed since it was set up; an administrator can reset two-factor "
                           "sign-in for this user", "code") from None


def provisioning_uri(secret: str, email: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def status(conn: Connection, user_id: int) -> dict:
    """{enabled, enabled_at, required, recovery_codes_left} of one user."""
    return {**_state(conn, user_id), "recovery_codes_left": recovery_codes_left(conn, user_id)}


def _state(conn: Connection, user_id: int) -> dict:
    """{enabled, enabled_at, required}: `status` without counting the recovery codes."""
    row = conn.execute(select(users.c.totp_enabled_at, roles.c.require_two_factor)
                       .join(roles, roles.c.id == users.c.role_id)
                       .where(users.c.id == user_id)).one()
    return {"enabled": row.totp_enabled_at is not None, "enabled_at": row.totp_enabled_at,
            "required": bool(row.require_two_factor)}


def recovery_codes_left(conn: Connection, user_id: int) -> int:
    return conn.execute(select(func.count()).select_from(recovery_codes).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None))).scalar()


def sign_in_step(conn: Connection, user_id: int) -> str | None:
    """What a password sign-in still needs: "code" (enrolled), "enrol" (the role requires it,
    not enrolled yet) or None (nothing more)."""
    state = _state(conn, user_id)
    if state["enabled"]:
        return "code"
    return "enrol" if state["required"] else None


def begin_enrolment(conn: Connection, user_id: int, key: bytes) -> str:
    """A new secret waiting for its first code (replaces one not confirmed); returns it.
    Not audited: nothing changes for signing in until it is confirmed."""
    secret = pyotp.random_base32()
    conn.execute(update(users).where(users.c.id == user_id).values(totp_pending=_seal(key, secret)))
    return secret


def pending_secret(conn: Connection, user_id: int, key: bytes) -> str | None:
    sealed = conn.execute(select(users.c.totp_pending).where(users.c.id == user_id)).scalar()
    return _open(key, sealed) if sealed else None


def confirm_enrolment(conn: Connection, actor: Actor, user_id: int, code: str,
                      key: bytes) -> list[str] | None:
    """Turns two-factor sign-in on once a code of the waiting secret checks out; returns the new
    recovery codes (shown once), or None when the code does not check out (nothing changes:
    the caller says so, after counting it as a failed login — sessions.confirm_enrolment).
    Every signed-in session of the user ends (one opened with the password alone may be
    someone else's): the caller opens a new one for this browser."""
    row = conn.execute(select(users.c.totp_pending, users.c.totp_enabled_at)
                       .where(users.c.id == user_id)).one()
    if row.totp_enabled_at is not None:
        raise Conflict("two-factor sign-in is on already", "code")
    if not row.totp_pending:
        raise Conflict("start the set-up first: there is no secret waiting for a code", "code")
    secret = _open(key, row.totp_pending)
    step = _matching_step(secret, code, None)
    if step is None:
        return None
    # A new auth stamp ends every session of the user — those open now and one a concurrent
    # password sign-in is opening with the old stamp, which deleting the rows would miss —
    # while the caller's next open_session (this browser) takes the new stamp and stays
    # signed in. The old rows cannot be used again; the idle-session purge removes them.
    conn.execute(update(users).where(users.c.id == user_id).values(
        totp_secret=row.totp_pending, totp_pending=None, totp_enabled_at=utcnow(), totp_last_step=step,
        auth_stamp=secrets.token_hex(16)))
    codes = _new_recovery_codes(conn, user_id)
    record(conn, actor, "user.2fa_enable", "user", user_id)
    return codes


def verify(conn: Connection, user_id: int, code: str, key: bytes, ip: str) -> str | None:
    """Checks a code of the user's second factor: "totp", "recovery" (that recovery code is now
    used up, and it is audited as the user's, from `ip`) or None. A TOTP code is accepted once.
    Unthrottled: callers go through sessions.verify_sign_in_code."""
    code = (code or "").strip()
    row = conn.execute(select(users.c.totp_secret, users.c.totp_last_step, users.c.email)
                       .where(users.c.id == user_id)).one()
    if not row.totp_secret:
        return None
    digits = code.replace(" ", "")
    if digits.isdigit():
        step = _matching_step(_open(key, row.totp_secret), digits, row.totp_last_step)
        if step is None:
            return None
        conn.execute(update(users).where(users.c.id == user_id).values(totp_last_step=step))
        return "totp"
    used = conn.execute(
        update(recovery_codes)
        .where(recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None),
               recovery_codes.c.code_hash == secret_digest(_normalise_recovery(code)))
        .values(used_at=utcnow())).rowcount
    if not used:
        return None
    who = Actor(user_id=user_id, label=row.email, permissions=frozenset(), ip=ip)
    record(conn, who, "user.2fa_recovery_code", "user", user_id)
    return "recovery"


def new_recovery_codes(conn: Connection, actor: Actor, user_id: int) -> list[str]:
    """Replaces the user's recovery codes (the old ones stop working); returns the new ones."""
    if not _state(conn, user_id)["enabled"]:
        raise Conflict("two-factor sign-in is off: there are no recovery codes to replace", "code")
    codes = _new_recovery_codes(conn, user_id)
    record(conn, actor, "user.2fa_recovery_codes", "user", user_id)
    return codes


def disable(conn: Connection, actor: Actor, user_id: int) -> None:
    """The user turns their own second factor off (refused while their role requires it)."""
    state = _state(conn, user_id)
    if state["required"]:
        raise Conflict("your role requires two-factor sign-in; it cannot be turned off", "code")
    if not state["enabled"]:
        return
    _clear(conn, user_id)
    record(conn, actor, "user.2fa_disable", "user", user_id)


def reset(conn: Connection, actor: Actor, user_id: int) -> None:
    """An administrator removes a user's second factor (a lost phone). The user's sessions end;
    if their role requires two-factor sign-in, they enrol again at their next sign-in."""
    row = conn.execute(select(users.c.id).where(users.c.id == user_id)).first()
    if row is None:
        raise NotFound("user %(user_id)s does not exist", "user_id", user_id=user_id)
    _clear(conn, user_id)
    conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
    record(conn, actor, "user.2fa_reset", "user", user_id)


def set_role_requirement(conn: Connection, actor: Actor, role_id: int, required: bool) -> None:
    """Whether the users of a role (built-in ones too) must sign in with a second factor."""
    role = get_role(conn, role_id)
    if bool(role["require_two_factor"]) == required:
        return
    conn.execute(update(roles).where(roles.c.id == role_id).values(require_two_factor=required))
    record(conn, actor, "role.require_2fa", "role", role_id, name=role["name"], required=required)


def _clear(conn: Connection, user_id: int) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(
        totp_secret=None, totp_pending=None, totp_enabled_at=None, totp_last_step=None))
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))


def _matching_step(secret: str, code: str, last_step: int | None) -> int | None:
    """The time step whose code this is (within the window), newer than `last_step`."""
    code = code.replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // totp.interval
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (last_step is None or step > last_step):
            return step
    return None


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _new_recovery_codes(conn: Connection, user_id: int) -> list[str]:
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    codes = ["-".join("".join(secrets.choice(_CODE_ALPHABET) for _ in range(4)) for _ in range(4))
             for _ in range(RECOVERY_CODES)]
    now = utcnow()
    conn.execute(insert(recovery_codes), [
        {"user_id": user_id, "code_hash": secret_digest(_normalise_recovery(code)), "created_at": now}
        for code in codes])
    return codes
