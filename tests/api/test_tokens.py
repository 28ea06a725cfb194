"""/api/v1/tokens: create, list, revoke (then 401), ownership rules."""
from tests.api.conftest import CLIENT_IP


def test_created_token_authenticates_as_its_user(env, api):
    response = api("POST", "/tokens", json={"name": "crm sync"})
    assert response.status_code == 201
    created = response.get_json()
    assert created["token"].startswith(created["prefix"])
    me = api("GET", "/me", token=created["token"]).get_json()
    assert me["token_id"] == created["id"]


def test_listed_tokens_never_show_the_secret(api):
    created = api("POST", "/tokens", json={"name": "listed"}).get_json()
    listed = api("GET", "/tokens").get_json()
    [row] = [t for t in listed if t["id"] == created["id"]]
    assert "token" not in row and created["token"] not in str(listed)


def test_revoked_token_gets_401(api):
    created = api("POST", "/tokens", json={"name": "short-lived"}).get_json()
    assert api("DELETE", f"/tokens/{created['id']}").status_code == 204
    response = api("GET", "/me", token=created["token"])
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_revoking_twice_is_harmless(api):
    created = api("POST", "/tokens", json={"name": "twice"}).get_json()
    api("DELETE", f"/tokens/{created['id']}")
    assert api("DELETE", f"/tokens/{created['id']}").status_code == 204


def test_a_user_without_users_manage_sees_only_own_tokens(env, api):
    editor_token = env.token("Editor")
    own = api("POST", "/tokens", json={"name": "mine"}, token=editor_token).get_json()
    listed = api("GET", "/tokens", token=editor_token).get_json()
    assert {t["user_id"] for t in listed} == {own["user_id"]}


def test_a_user_without_users_manage_cannot_revoke_others_tokens(env, api):
    admins = api("POST", "/tokens", json={"name": "admin's"}).get_json()
    response = api("DELETE", f"/tokens/{admins['id']}", token=env.token("Editor"))
    assert response.status_code == 403
    assert api("GET", "/me", token=admins["token"]).status_code == 200


def test_a_user_without_users_manage_cannot_mint_tokens_for_others(env, api):
    admin_id = api("GET", "/me").get_json()["id"]
    response = api("POST", "/tokens", json={"name": "x", "user_id": admin_id}, token=env.token("Viewer"))
    assert response.status_code == 403


def test_token_creation_is_audited_with_actor_and_ip(api):
    created = api("POST", "/tokens", json={"name": "audited"}).get_json()
    [entry] = [e for e in api("GET", "/audit?action=token.create").get_json()
               if e["target_id"] == str(created["id"])]
    assert entry["ip"] == CLIENT_IP and entry["actor"] == api("GET", "/me").get_json()["email"]
    assert created["token"] not in str(entry)


def test_token_for_missing_user_is_404(api):
    assert api("POST", "/tokens", json={"name": "x", "user_id": 99999}).status_code == 404
