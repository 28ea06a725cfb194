"""/api/v1/roles and /api/v1/permissions."""
import uuid

from altkraft_onprem.access.models import BUILTIN_ROLES, PERMISSIONS
from tests.api.conftest import CLIENT_IP


def _role(api, **body):
    body = {"name": f"Role {uuid.uuid4().hex[:6]}", "permissions": ["lists:read"], **body}
    return api("POST", "/roles", json=body)


def test_builtin_roles_are_listed_with_their_permissions(api):
    roles = {r["name"]: r for r in api("GET", "/roles").get_json()}
    for name, perms in BUILTIN_ROLES.items():
        assert roles[name]["builtin"] and set(roles[name]["permissions"]) == perms


def test_custom_role_is_created_from_named_permissions(api):
    response = _role(api, permissions=["lists:read", "reports:read"], description="read-only")
    assert response.status_code == 201
    assert response.get_json()["permissions"] == ["lists:read", "reports:read"]


def test_unknown_permission_is_422_naming_the_field(api):
    response = _role(api, permissions=["lists:read", "rockets:launch"])
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "permissions"


def test_duplicate_role_name_is_409(api):
    _role(api, name="Twins")
    assert _role(api, name="twins").status_code == 409


def test_builtin_role_cannot_be_changed(api):
    viewer = next(r for r in api("GET", "/roles").get_json() if r["name"] == "Viewer")
    response = api("PATCH", f"/roles/{viewer['id']}", json={"permissions": list(PERMISSIONS)})
    assert response.status_code == 403


def test_custom_role_permissions_apply_to_its_users(env, api):
    role = _role(api, permissions=["audit:read"]).get_json()
    user = api("POST", "/users", json={"email": f"r{uuid.uuid4().hex[:6]}@example.com",
                                        "password": "correct horse battery", "role": role["name"]}).get_json()
    token = api("POST", "/tokens", json={"name": "t", "user_id": user["id"]}).get_json()["token"]
    assert api("GET", "/audit", token=token).status_code == 200
    assert api("GET", "/users", token=token).status_code == 403


def test_role_change_is_audited_with_actor_and_ip(api):
    role = _role(api).get_json()
    api("PATCH", f"/roles/{role['id']}", json={"permissions": ["lists:read", "lists:write"]})
    [entry] = [e for e in api("GET", "/audit?action=role.update").get_json()
               if e["target_id"] == str(role["id"])]
    assert entry["ip"] == CLIENT_IP and entry["actor"] == api("GET", "/me").get_json()["email"]
    assert "lists:write" in entry["details"]["permissions"]


def test_role_with_users_cannot_be_deleted(api):
    role = _role(api).get_json()
    api("POST", "/users", json={"email": f"d{uuid.uuid4().hex[:6]}@example.com",
                                "password": "correct horse battery", "role": role["name"]})
    assert api("DELETE", f"/roles/{role['id']}").status_code == 409


def test_unused_custom_role_is_deleted(api):
    role = _role(api).get_json()
    assert api("DELETE", f"/roles/{role['id']}").status_code == 204
    assert role["id"] not in [r["id"] for r in api("GET", "/roles").get_json()]


def test_permissions_vocabulary_is_listed(env):
    token = env.token("Viewer")
    response = env.app.test_client().get("/api/v1/permissions", headers={"Authorization": f"Bearer {token}"})
    assert response.get_json() == PERMISSIONS


def test_duplicate_non_ascii_role_name_is_409(api):
    _role(api, name="Ärger")
    assert _role(api, name="Ärger").status_code == 409
    assert _role(api, name="ärger").status_code == 409


def test_empty_patch_of_custom_role_changes_nothing(api):
    role = _role(api).get_json()
    response = api("PATCH", f"/roles/{role['id']}", json={})
    assert response.status_code == 200 and response.get_json() == role


def test_renaming_a_role_onto_another_name_is_409(api):
    first, second = _role(api).get_json(), _role(api).get_json()
    assert api("PATCH", f"/roles/{second['id']}", json={"name": first["name"]}).status_code == 409
