"""/api/v1/users and /api/v1/me."""
import uuid

from tests.api.conftest import CLIENT_IP
from tests.conftest import PASSWORD


def _new_user(api, role="Editor", **extra):
    body = {"email": f"{role.lower()}-{uuid.uuid4().hex[:8]}@Example.com", "password": PASSWORD,
            "role": role, **extra}
    return api("POST", "/users", json=body)


def test_create_user_returns_it_without_secrets(api):
    response = api("POST", "/users", json={"email": "Ann@Example.COM", "password": PASSWORD,
                                            "role": "Editor", "name": "Ann"})
    assert response.status_code == 201
    user = response.get_json()
    assert user["email"] == "ann@example.com" and user["role"] == "Editor" and user["is_active"]
    assert "password_hash" not in user and "auth_stamp" not in user


def test_list_users_includes_created_user(api):
    created = _new_user(api, "Viewer").get_json()
    listed = api("GET", "/users").get_json()
    assert created["id"] in [u["id"] for u in listed]


def test_get_user_by_id(api):
    created = _new_user(api, "Analyst").get_json()
    assert api("GET", f"/users/{created['id']}").get_json()["email"] == created["email"]


def test_duplicate_email_is_409_naming_the_field(api):
    api("POST", "/users", json={"email": "dup@example.com", "password": PASSWORD, "role": "Viewer"})
    again = api("POST", "/users", json={"email": "DUP@example.com", "password": PASSWORD, "role": "Viewer"})
    assert again.status_code == 409
    assert again.get_json()["errors"][0]["field"] == "email"


def test_invalid_email_is_422(api):
    response = api("POST", "/users", json={"email": "not an address", "password": PASSWORD, "role": "Viewer"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "email"


def test_unknown_role_is_404_naming_the_field(api):
    response = api("POST", "/users", json={"email": "r@example.com", "password": PASSWORD, "role": "Boss"})
    assert response.status_code == 404
    assert response.get_json()["errors"][0]["field"] == "role"


def test_short_password_is_422(api):
    response = api("POST", "/users", json={"email": "p@example.com", "password": "short", "role": "Viewer"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "password"


def test_unknown_body_field_is_422(api):
    response = api("POST", "/users", json={"email": "u@example.com", "password": PASSWORD,
                                            "role": "Viewer", "is_admin": True})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "is_admin"


def test_patch_changes_role(api):
    created = _new_user(api, "Viewer").get_json()
    response = api("PATCH", f"/users/{created['id']}", json={"role": "Manager"})
    assert response.status_code == 200 and response.get_json()["role"] == "Manager"


def test_deactivated_users_token_stops_working(env, api):
    created = _new_user(api, "Editor").get_json()
    token = api("POST", "/tokens", json={"name": "t", "user_id": created["id"]}).get_json()["token"]
    assert api("GET", "/me", token=token).status_code == 200
    api("PATCH", f"/users/{created['id']}", json={"is_active": False})
    assert api("GET", "/me", token=token).status_code == 401


def test_last_administrator_cannot_be_demoted(env, api):
    me = api("GET", "/me").get_json()
    others = [u for u in api("GET", "/users").get_json()
              if u["role"] == "Administrator" and u["id"] != me["id"]]
    for other in others:
        api("PATCH", f"/users/{other['id']}", json={"is_active": False})
    response = api("PATCH", f"/users/{me['id']}", json={"role": "Viewer"})
    assert response.status_code == 409
    assert api("GET", "/me").get_json()["role"] == "Administrator"


def test_me_describes_the_token_owner(env, api):
    token = env.token("Analyst")
    me = api("GET", "/me", token=token).get_json()
    assert me["role"] == "Analyst" and me["token_id"] is not None
    assert "subscribers:export" in me["permissions"] and "users:manage" not in me["permissions"]


def test_user_creation_is_audited_with_actor_and_ip(api):
    created = _new_user(api, "Viewer").get_json()
    me = api("GET", "/me").get_json()
    [entry] = [e for e in api("GET", "/audit?action=user.create").get_json()
               if e["target_id"] == str(created["id"])]
    assert entry["actor"] == me["email"] and entry["actor_token_id"] == me["token_id"]
    assert entry["ip"] == CLIENT_IP


def test_role_change_of_a_user_is_audited(api):
    created = _new_user(api, "Viewer").get_json()
    api("PATCH", f"/users/{created['id']}", json={"role": "Editor"})
    [entry] = [e for e in api("GET", "/audit?action=user.update").get_json()
               if e["target_id"] == str(created["id"])]
    editor_id = next(r["id"] for r in api("GET", "/roles").get_json() if r["name"] == "Editor")
    assert entry["details"]["role_id"] == editor_id
    assert entry["ip"] == CLIENT_IP and entry["actor"] == api("GET", "/me").get_json()["email"]
