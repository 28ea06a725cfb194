"""Two-factor sign-in (TOTP + recovery codes): enrolment, the second step of a sign-in, replay,
throttling, what is stored, roles that require it, an administrator's reset, the API."""
from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access import twofactor
from altkraft_onprem.access.models import login_attempts, recovery_codes, system_actor, users
from tests.cli_helpers import altkraft, env_for
from tests.conftest import PASSWORD, csrf_token


def enrol(env, user: dict) -> tuple[str, list[str]]:
    """Turns two-factor sign-in on for a user through the services: (secret, recovery codes)."""
    key = env.app.config["SECRET_KEY"]
    with db.write(env.engine) as conn:
        secret = access.begin_enrolment(conn, user["id"], key)
        codes = twofactor.confirm_enrolment(conn, system_actor(), user["id"], pyotp.TOTP(secret).now(), key)
    return secret, codes


def user_of_a_role_that_requires_it(env, role: str) -> int:
    """A user (NAME@example.com) of a new role that requires two-factor sign-in."""
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, system_actor(), role, ["dashboard:read"])
        access.set_role_requirement(conn, system_actor(), role_id, True)
        return access.create_user(conn, system_actor(), f"{role.lower()}@example.com", PASSWORD, role_id)


def next_code(secret: str) -> str:
    """The code of the next time step: accepted (within the window) and never used yet."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def password_step(client, user: dict, next_url: str = "/"):
    page = client.get("/login")
    return client.post("/login", data={"email": user["email"], "password": user["password"],
                                       "next": next_url, "csrf_token": csrf_token(page.get_data(as_text=True))})


def code_step(client, code: str):
    page = client.get("/login/code")
    return client.post("/login/code", data={"code": code, "csrf_token": csrf_token(page.get_data(as_text=True))})


def audit_actions(env, user_id: int) -> list[str]:
    with db.read(env.engine) as conn:
        return [e["action"] for e in access.audit_entries(conn, limit=1000)
                if e["target_type"] == "user" and e["target_id"] == str(user_id)]


def test_enrolment_from_the_profile_shows_a_qr_code_and_the_secret_once(env, client):
    user = env.user("Editor")
    env.login(client, user)
    page = client.get("/profile/two-factor").get_data(as_text=True)
    assert 'src="data:image/svg+xml' in page
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    with db.read(env.engine) as conn:
        stored = conn.execute(select(users.c.totp_pending).where(users.c.id == user["id"])).scalar()
    assert secret not in stored                          # encrypted at rest

    wrong = client.post("/profile/two-factor", data={"action": "confirm", "code": "000000",
                                                     "csrf_token": csrf_token(page)})
    assert "not right" in wrong.get_data(as_text=True)
    done = client.post("/profile/two-factor", data={"action": "confirm", "code": pyotp.TOTP(secret).now(),
                                                    "csrf_token": csrf_token(page)})
    html = done.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", html)
    assert len(codes) == 10
    assert client.get("/").status_code == 200           # this browser got a fresh session
    with db.read(env.engine) as conn:
        hashes = conn.execute(select(recovery_codes.c.code_hash)
                              .where(recovery_codes.c.user_id == user["id"])).scalars().all()
        row = conn.execute(select(users).where(users.c.id == user["id"])).first()
    assert len(hashes) == 10 and not set(codes) & set(hashes)
    assert all(code.replace("-", "") not in h for code in codes for h in hashes)
    assert row.totp_secret and secret not in row.totp_secret and row.totp_pending is None
    assert "user.2fa_enable" in audit_actions(env, user["id"])


def test_turning_it_on_keeps_this_browser_signed_in_and_signs_the_others_out(env):
    user = env.user("Editor")
    here, elsewhere = env.app.test_client(), env.app.test_client()
    env.login(here, user)
    env.login(elsewhere, user)
    page = here.get("/profile/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    done = here.post("/profile/two-factor", data={"action": "confirm", "code": pyotp.TOTP(secret).now(),
                                                  "csrf_token": csrf_token(page)})
    assert "Recovery codes" in done.get_data(as_text=True)
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302


def test_a_password_alone_no_longer_signs_in(env):
    user = env.user("Editor")
    secret, _ = enrol(env, user)
    client = env.app.test_client()
    response = password_step(client, user, "/campaigns")
    assert response.status_code == 302 and response.headers["Location"] == "/login/code"
    assert client.get("/").status_code == 302           # no session yet
    assert code_step(client, "123456").status_code == 403
    good = code_step(client, next_code(secret))
    assert good.status_code == 302 and good.headers["Location"] == "/campaigns"
    assert client.get("/").status_code == 200


def test_a_code_works_once(env):
    user = env.user("Editor")
    secret, _ = enrol(env, user)
    code = next_code(secret)
    first, second = env.app.test_client(), env.app.test_client()
    password_step(first, user)
    assert code_step(first, code).status_code == 302
    password_step(second, user)
    assert code_step(second, code).status_code == 403


def test_a_recovery_code_works_once_and_is_audited(env):
    user = env.user("Editor")
    _, codes = enrol(env, user)
    client = env.app.test_client()
    password_step(client, user)
    response = code_step(client, codes[3].upper().replace("-", " "))    # typed loosely
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "recovery code; 9 are left" in page
    other = env.app.test_client()
    password_step(other, user)
    assert code_step(other, codes[3]).status_code == 403
    assert "user.2fa_recovery_code" in audit_actions(env, user["id"])


def test_a_used_recovery_code_is_audited_with_the_address_it_came_from(env):
    user = env.user("Editor")
    _, codes = enrol(env, user)
    client = env.app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.51"
    password_step(client, user)
    assert code_step(client, codes[0]).status_code == 302
    page = client.get("/profile/two-factor").get_data(as_text=True)
    client.environ_base["REMOTE_ADDR"] = "192.0.2.52"
    client.post("/profile/two-factor", data={"action": "recovery", "code": codes[1],
                                             "csrf_token": csrf_token(page)})
    with db.read(env.engine) as conn:
        used = [e for e in access.audit_entries(conn, action="user.2fa_recovery_code")
                if e["target_id"] == str(user["id"]) and e["action"] == "user.2fa_recovery_code"]
    assert [(e["ip"], e["actor_user_id"], e["actor"]) for e in used] == [
        ("192.0.2.52", user["id"], user["email"]), ("192.0.2.51", user["id"], user["email"])]


def test_the_code_step_is_throttled_like_passwords(env):
    user = env.user("Editor")
    secret, _ = enrol(env, user)
    client = env.app.test_client()
    password_step(client, user)
    for _ in range(env.settings["security.login_max_failures"]):
        assert code_step(client, "000000").status_code == 403
    assert code_step(client, next_code(secret)).status_code == 429


def failed_attempts(env, email: str, ip: str) -> int:
    """Failed sign-ins recorded for the address from that IP (what the sign-in throttle counts)."""
    with db.read(env.engine) as conn:
        return len(conn.execute(select(login_attempts.c.id).where(
            login_attempts.c.email == email, login_attempts.c.ip == ip,
            login_attempts.c.success.is_(False))).all())


def own_client(env, ip: str):
    """A test client from an IP of its own: the throttle's per-IP count stays this test's."""
    client = env.app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def test_codes_for_changes_through_the_api_are_throttled_and_recorded_like_sign_in(env):
    user = env.user("Editor")
    secret, codes = enrol(env, user)
    with db.write(env.engine) as conn:
        _, token = access.create_token(conn, system_actor(), user["id"], "t")
    auth = {"Authorization": f"Bearer {token}"}
    client = own_client(env, "192.0.2.41")
    limit = env.settings["security.login_max_failures"]
    for attempt in range(limit):
        path = "/api/v1/me/two-factor/" + ("disable" if attempt % 2 else "recovery-codes")
        wrong = client.post(path, json={"code": "000000"}, headers=auth)
        assert wrong.status_code == 422 and "not right" in wrong.json["detail"]
    assert failed_attempts(env, user["email"], "192.0.2.41") == limit
    refused = client.post("/api/v1/me/two-factor/recovery-codes", json={"code": codes[0]}, headers=auth)
    assert refused.status_code == 429
    assert client.post("/api/v1/me/two-factor/disable", json={"code": next_code(secret)},
                       headers=auth).status_code == 429
    with db.read(env.engine) as conn:
        assert access.two_factor_status(conn, user["id"])["recovery_codes_left"] == 10
    # The same limit as a sign-in's: the password form refuses this user now too.
    assert password_step(client, user).status_code == 429


def test_codes_confirming_an_enrolment_through_the_api_are_throttled(env):
    user = env.user("Editor")
    with db.write(env.engine) as conn:
        _, token = access.create_token(conn, system_actor(), user["id"], "t")
    auth = {"Authorization": f"Bearer {token}"}
    client = own_client(env, "192.0.2.42")
    secret = client.post("/api/v1/me/two-factor", headers=auth).json["secret"]
    limit = env.settings["security.login_max_failures"]
    for _ in range(limit):
        assert client.post("/api/v1/me/two-factor/confirm", json={"code": "000000"},
                           headers=auth).status_code == 422
    assert failed_attempts(env, user["email"], "192.0.2.42") == limit
    assert client.post("/api/v1/me/two-factor/confirm", json={"code": pyotp.TOTP(secret).now()},
                       headers=auth).status_code == 429


def test_codes_on_the_profile_page_are_throttled_and_recorded_like_sign_in(env):
    user = env.user("Editor")
    secret, codes = enrol(env, user)
    client = own_client(env, "192.0.2.43")
    password_step(client, user)
    assert code_step(client, next_code(secret)).status_code == 302
    page = client.get("/profile/two-factor").get_data(as_text=True)
    limit = env.settings["security.login_max_failures"]
    for attempt in range(limit):
        wrong = client.post("/profile/two-factor", data={
            "action": "disable" if attempt % 2 else "recovery", "code": "000000",
            "csrf_token": csrf_token(page)})
        assert "not right" in wrong.get_data(as_text=True)
    assert failed_attempts(env, user["email"], "192.0.2.43") == limit
    refused = client.post("/profile/two-factor", data={"action": "disable", "code": codes[0],
                                                       "csrf_token": csrf_token(page)})
    assert refused.status_code == 429
    with db.read(env.engine) as conn:
        assert access.two_factor_status(conn, user["id"])["enabled"]


def test_codes_confirming_an_enrolment_on_the_profile_page_are_throttled(env):
    user = env.user("Editor")
    client = own_client(env, "192.0.2.44")
    env.login(client, user)
    page = client.get("/profile/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    limit = env.settings["security.login_max_failures"]
    for _ in range(limit):
        wrong = client.post("/profile/two-factor", data={"action": "confirm", "code": "000000",
                                                         "csrf_token": csrf_token(page)})
        assert "not right" in wrong.get_data(as_text=True)
    assert failed_attempts(env, user["email"], "192.0.2.44") == limit
    refused = client.post("/profile/two-factor", data={"action": "confirm", "code": pyotp.TOTP(secret).now(),
                                                       "csrf_token": csrf_token(page)})
    assert refused.status_code == 429
    with db.read(env.engine) as conn:
        assert not access.two_factor_status(conn, user["id"])["enabled"]


def test_the_code_page_without_a_password_first_goes_back_to_the_login(env):
    client = env.app.test_client()
    response = client.get("/login/code")
    assert response.status_code == 302 and response.headers["Location"] == "/login"


def test_a_role_that_requires_it_makes_its_users_enrol_at_sign_in(env):
    user_id = user_of_a_role_that_requires_it(env, "Secured")
    user = {"id": user_id, "email": "secured@example.com", "password": PASSWORD}
    client = env.app.test_client()
    response = password_step(client, user)
    assert response.headers["Location"] == "/login/enrol"
    page = client.get("/login/enrol").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert client.get("/").status_code == 302
    done = client.post("/login/enrol", data={"code": pyotp.TOTP(secret).now(), "action": "confirm",
                                             "csrf_token": csrf_token(page)})
    assert done.status_code == 200 and "Recovery codes" in done.get_data(as_text=True)
    assert client.get("/").status_code == 200
    with db.read(env.engine) as conn:
        assert access.two_factor_status(conn, user_id)["enabled"]


def test_a_signed_in_user_whose_role_starts_requiring_it_is_sent_to_enrol(env, client):
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, system_actor(), "Later secured", ["dashboard:read"])
        access.create_user(conn, system_actor(), "later@example.com", PASSWORD, role_id)
    env.login(client, {"email": "later@example.com", "password": PASSWORD})
    assert client.get("/").status_code == 200
    admin = env.app.test_client()
    env.login(admin, env.user("Administrator"))
    roles_page = admin.get("/roles").get_data(as_text=True)
    admin.post("/roles/two-factor", data={"required": [str(role_id)], "csrf_token": csrf_token(roles_page)})
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/profile/two-factor"
    assert client.get("/profile/two-factor").status_code == 200
    with db.read(env.engine) as conn:
        assert access.get_role(conn, role_id)["require_two_factor"]
        entries = access.audit_entries(conn, action="role.require_2fa")
    assert entries[0]["target_id"] == str(role_id) and entries[0]["details"]["required"] is True


def test_a_required_second_factor_cannot_be_turned_off(env):
    user_id = user_of_a_role_that_requires_it(env, "Must")
    enrol(env, {"id": user_id})
    with pytest.raises(Exception, match="requires two-factor"), db.write(env.engine) as conn:
        access.disable_two_factor(conn, system_actor(), user_id)


def test_turning_it_off_needs_a_code(env, client):
    user = env.user("Editor")
    secret, codes = enrol(env, user)
    password_step(client, user)
    code_step(client, next_code(secret))
    page = client.get("/profile/two-factor").get_data(as_text=True)
    refused = client.post("/profile/two-factor", data={"action": "disable", "code": "000000",
                                                       "csrf_token": csrf_token(page)})
    assert "not right" in refused.get_data(as_text=True)
    with db.read(env.engine) as conn:
        assert access.two_factor_status(conn, user["id"])["enabled"]
    client.post("/profile/two-factor", data={"action": "disable", "code": codes[0],   # a recovery code
                                             "csrf_token": csrf_token(page)})
    with db.read(env.engine) as conn:
        assert not access.two_factor_status(conn, user["id"])["enabled"]
    assert "user.2fa_disable" in audit_actions(env, user["id"])


def test_an_administrator_resets_a_lost_second_factor(env):
    user = env.user("Editor")
    secret, _ = enrol(env, user)
    victim = env.app.test_client()
    password_step(victim, user)
    code_step(victim, next_code(secret))
    assert victim.get("/").status_code == 200
    admin = env.app.test_client()
    env.login(admin, env.user("Administrator"))
    page = admin.get(f"/users/{user['id']}").get_data(as_text=True)
    assert "Reset two-factor sign-in" in page
    admin.post(f"/users/{user['id']}/two-factor/reset", data={"csrf_token": csrf_token(page)})
    assert victim.get("/").status_code == 302            # sessions ended
    fresh = env.app.test_client()
    assert password_step(fresh, user).headers["Location"] == "/"
    assert "user.2fa_reset" in audit_actions(env, user["id"])


def test_the_api_enrols_confirms_and_resets(env, client):
    user = env.user("Editor")
    with db.write(env.engine) as conn:
        _, token = access.create_token(conn, system_actor(), user["id"], "t")
    auth = {"Authorization": f"Bearer {token}"}
    started = client.post("/api/v1/me/two-factor", headers=auth)
    assert started.status_code == 200
    secret = started.json["secret"]
    assert started.json["otpauth_uri"].startswith("otpauth://totp/ALTKRAFT:")
    bad = client.post("/api/v1/me/two-factor/confirm", json={"code": "000000"}, headers=auth)
    assert bad.status_code == 422 and "not right" in bad.json["detail"]
    done = client.post("/api/v1/me/two-factor/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=auth)
    assert done.status_code == 200 and len(done.json["recovery_codes"]) == 10
    me = client.get("/api/v1/me", headers=auth).json
    assert me["two_factor"] is True and me["two_factor_required"] is False
    again = client.post("/api/v1/me/two-factor", headers=auth)
    assert again.status_code == 409
    fresh = client.post("/api/v1/me/two-factor/recovery-codes", json={"code": done.json["recovery_codes"][0]},
                        headers=auth)
    assert fresh.status_code == 200 and fresh.json["recovery_codes"] != done.json["recovery_codes"]

    admin = {"Authorization": f"Bearer {env.token('Administrator')}"}
    listed = {u["id"]: u for u in client.get("/api/v1/users", headers=admin).json}
    assert listed[user["id"]]["two_factor"] is True
    assert client.post(f"/api/v1/users/{user['id']}/two-factor/reset", headers=auth).status_code == 403
    assert client.post(f"/api/v1/users/{user['id']}/two-factor/reset", headers=admin).status_code == 204
    assert client.get("/api/v1/me", headers=auth).json["two_factor"] is False


def test_a_built_in_role_takes_the_requirement_through_the_api(env, client):
    admin = {"Authorization": f"Bearer {env.token('Administrator')}"}
    viewer = next(r for r in client.get("/api/v1/roles", headers=admin).json if r["name"] == "Viewer")
    response = client.patch(f"/api/v1/roles/{viewer['id']}", json={"require_two_factor": True}, headers=admin)
    assert response.status_code == 200 and response.json["require_two_factor"] is True
    assert client.patch(f"/api/v1/roles/{viewer['id']}", json={"name": "X"}, headers=admin).status_code == 403
    client.patch(f"/api/v1/roles/{viewer['id']}", json={"require_two_factor": False}, headers=admin)


def test_the_cli_resets_a_second_factor(env):
    user = env.user("Editor")
    enrol(env, user)
    result = altkraft("user", "reset-2fa", "--email", user["email"], env=env_for(env.settings))
    assert result.returncode == 0, result.stderr
    assert f"two-factor sign-in of {user['email']} reset" in result.stdout
    with db.read(env.engine) as conn:
        assert not access.two_factor_status(conn, user["id"])["enabled"]
