"""List-scoped rights: a custom role limited to some lists sees and sends only to them — lists,
subscribers, campaigns, exports and reports of other lists answer 404 (as if they did not
exist), areas that span every list (segments, suppression, messages, automation, ...) answer
403, and a campaign or a person cannot be aimed at another list (403). API and UI alike."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.audience import lists, segments, subscribers
from altkraft_onprem.campaigns.models import campaigns as campaigns_table
from tests.campaigns.helpers import make_campaign, make_list, make_message
from tests.conftest import PASSWORD, csrf_token

PERMISSIONS = ["dashboard:read", "lists:read", "lists:write", "subscribers:export", "campaigns:read",
               "campaigns:write", "campaigns:send", "reports:read", "messages:read", "subscribers:delete"]


@pytest.fixture(scope="module")
def admin(env) -> dict:
    return {"Authorization": f"Bearer {env.token('Administrator')}"}


@pytest.fixture(scope="module")
def world(env):
    """Lists A and B, a person on each and one on both, a campaign to each (started), and a
    user (with a token) of a role limited to list A."""
    tag = uuid.uuid4().hex[:6]
    list_a, (only_a, on_both) = make_list(env, f"Brand A {tag}", [
        {"email": f"a-{tag}@example.com"}, {"email": f"both-{tag}@example.com"}])
    list_b, (only_b,) = make_list(env, f"Brand B {tag}", [{"email": f"b-{tag}@example.com"}])
    message_id = make_message(env)
    with db.write(env.engine) as conn:
        subscribers.change_memberships(conn, system_actor(), on_both, add=[list_b])
    campaign_a = make_campaign(env, message_id, [list_a], name=f"To A {tag}")
    campaign_b = make_campaign(env, message_id, [list_b], name=f"To B {tag}")
    with db.write(env.engine) as conn:
        conn.execute(update(campaigns_table).where(campaigns_table.c.id.in_([campaign_a, campaign_b]))
                     .values(state="finished", started_at=db.types.utcnow()))
        role_id = access.create_role(conn, system_actor(), f"Brand A team {tag}", PERMISSIONS, lists=[list_a])
        segment_id = segments.create_segment(conn, system_actor(), f"Everyone {tag}", {"op": "and", "rules": [
            {"field": "email", "operator": "contains", "value": tag}]})
        user_id = access.create_user(conn, system_actor(), f"brand-a-{tag}@example.com", PASSWORD, role_id)
        _, token = access.create_token(conn, system_actor(), user_id, "t")
    return {"a": list_a, "b": list_b, "only_a": only_a, "only_b": only_b, "both": on_both,
            "message": message_id, "campaign_a": campaign_a, "campaign_b": campaign_b,
            "role": role_id, "segment": segment_id, "tag": tag, "user": {"email": f"brand-a-{tag}@example.com", "password": PASSWORD},
            "auth": {"Authorization": f"Bearer {token}"}}


# --- API -------------------------------------------------------------------------------------

def test_the_api_lists_only_its_lists(client, world):
    ids = {item["id"] for item in client.get("/api/v1/lists", headers=world["auth"]).json}
    assert world["a"] in ids and world["b"] not in ids


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/lists/{b}"), ("PATCH", "/api/v1/lists/{b}"), ("DELETE", "/api/v1/lists/{b}"),
    ("GET", "/api/v1/lists/{b}/export.csv"), ("GET", "/api/v1/subscribers/{only_b}"),
    ("PATCH", "/api/v1/subscribers/{only_b}"), ("GET", "/api/v1/campaigns/{campaign_b}"),
    ("PATCH", "/api/v1/campaigns/{campaign_b}"), ("POST", "/api/v1/campaigns/{campaign_b}/pause"),
    ("GET", "/api/v1/campaigns/{campaign_b}/report"),
])
def test_other_lists_objects_answer_404(client, world, method, path):
    response = client.open(path.format(**world), method=method, json={}, headers=world["auth"])
    assert response.status_code == 404, response.get_data(as_text=True)


def test_its_own_objects_answer(client, world):
    auth = world["auth"]
    assert client.get(f"/api/v1/lists/{world['a']}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/lists/{world['a']}/export.csv", headers=auth).status_code == 200
    assert client.get(f"/api/v1/subscribers/{world['both']}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/campaigns/{world['campaign_a']}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/campaigns/{world['campaign_a']}/report", headers=auth).status_code == 200


def test_the_api_finds_only_people_of_its_lists(client, world, admin):
    found = {p["id"] for p in client.get("/api/v1/subscribers?limit=1000", headers=world["auth"]).json}
    assert {world["only_a"], world["both"]} <= found and world["only_b"] not in found
    email = client.get(f"/api/v1/subscribers/{world['only_b']}", headers=admin).json["email"]
    assert client.get(f"/api/v1/subscribers?email={email}", headers=world["auth"]).json == []


def test_the_api_lists_only_its_campaigns(client, world):
    ids = {c["id"] for c in client.get("/api/v1/campaigns", headers=world["auth"]).json}
    assert world["campaign_a"] in ids and world["campaign_b"] not in ids


def test_a_campaign_cannot_be_aimed_at_another_list(client, world):
    body = {"name": "Sneaky", "message_id": world["message"], "lists": [world["a"], world["b"]],
            "from_email": "news@example.com"}
    refused = client.post("/api/v1/campaigns", json=body, headers=world["auth"])
    assert refused.status_code == 403 and str(world["b"]) in refused.json["detail"]
    excluded = client.post("/api/v1/campaigns", json={**body, "lists": [world["a"]],
                                                      "exclude_lists": [world["b"]]}, headers=world["auth"])
    assert excluded.status_code == 403
    ok = client.post("/api/v1/campaigns", json={**body, "lists": [world["a"]]}, headers=world["auth"])
    assert ok.status_code == 201
    moved = client.patch(f"/api/v1/campaigns/{ok.json['id']}", json={"lists": [world["b"]]},
                         headers=world["auth"])
    assert moved.status_code == 403


def test_a_person_cannot_be_put_on_another_list(client, world):
    auth = world["auth"]
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    assert client.post("/api/v1/subscribers", json={"email": email, "lists": [world["b"]]},
                       headers=auth).status_code == 403
    assert client.post("/api/v1/subscribers", json={"email": email}, headers=auth).status_code == 403
    created = client.post("/api/v1/subscribers", json={"email": email, "lists": [world["a"]]}, headers=auth)
    assert created.status_code == 201
    moved = client.patch(f"/api/v1/subscribers/{created.json['id']}",
                         json={"lists": {str(world["b"]): "confirmed"}}, headers=auth)
    assert moved.status_code == 403


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/lists"), ("GET", "/api/v1/fields"), ("GET", "/api/v1/suppressions"),
    ("GET", "/api/v1/reports/cohorts"), ("GET", "/api/v1/messages"), ("POST", "/api/v1/subscribers/delete"),
])
def test_what_spans_every_list_answers_403(client, world, method, path):
    response = client.open(path, method=method, json={}, headers=world["auth"])
    assert response.status_code == 403, response.get_data(as_text=True)
    assert "limited to some lists" in response.json["detail"]


def test_roles_keep_their_lists_through_the_api(client, world, admin):
    created = client.post("/api/v1/roles", json={"name": f"Scoped {uuid.uuid4().hex[:6]}",
                                                 "permissions": ["lists:read"], "lists": [world["b"]]},
                          headers=admin)
    assert created.status_code == 201 and created.json["lists"] == [world["b"]]
    lifted = client.patch(f"/api/v1/roles/{created.json['id']}", json={"lists": None}, headers=admin)
    assert lifted.json["lists"] is None
    assert client.post("/api/v1/roles", json={"name": "Empty", "lists": []}, headers=admin).status_code == 422


def unconfirmed_on_b(env, world) -> int:
    """A person on list A and, awaiting confirmation, on list B."""
    with db.write(env.engine) as conn:
        person = subscribers.create_subscriber(conn, system_actor(), {
            "email": f"pending-{uuid.uuid4().hex[:6]}@example.com"}, list_ids=[world["a"]])
        subscribers.change_memberships(conn, system_actor(), person, add=[world["b"]],
                                       status="unconfirmed")
    return person


def resend_audited(env, person: int) -> bool:
    with db.read(env.engine) as conn:
        return any(e["target_id"] == str(person)
                   for e in access.audit_entries(conn, action="subscriber.resend_confirmation"))


def test_the_opt_in_email_cannot_be_resent_for_another_list(env, client, world):
    person = unconfirmed_on_b(env, world)
    refused = client.post(f"/api/v1/subscribers/{person}/resend-confirmation",
                          json={"list": world["b"]}, headers=world["auth"])
    assert refused.status_code == 403 and str(world["b"]) in refused.json["detail"]
    assert not resend_audited(env, person)


# --- UI --------------------------------------------------------------------------------------

@pytest.fixture()
def ui(env, client, world):
    env.login(client, world["user"])
    return client


def test_the_lists_page_shows_only_its_lists(ui, world, env):
    html = ui.get("/audience/").get_data(as_text=True)
    with db.read(env.engine) as conn:
        names = lists.names(conn)
    assert names[world["a"]] in html and names[world["b"]] not in html


@pytest.mark.parametrize("path", [
    "/audience/lists/{b}", "/audience/subscribers/{only_b}", "/campaigns/{campaign_b}",
    "/reports/campaigns/{campaign_b}", "/reports/campaigns/{campaign_b}/report.csv",
])
def test_other_lists_pages_answer_404(ui, world, path):
    assert ui.get(path.format(**world)).status_code == 404


def test_its_own_pages_answer(ui, world):
    for path in ("/", "/audience/lists/{a}", "/audience/subscribers/{both}", "/campaigns/{campaign_a}",
                 "/reports/campaigns/{campaign_a}", "/campaigns", "/reports/", "/audience/subscribers"):
        assert ui.get(path.format(**world)).status_code == 200, path


def test_the_browsers_show_only_its_people_and_campaigns(ui, world, env):
    people = ui.get("/audience/subscribers").get_data(as_text=True)
    assert f'/audience/subscribers/{world["only_a"]}"' in people
    assert f'/audience/subscribers/{world["only_b"]}"' not in people
    campaigns_page = ui.get("/campaigns").get_data(as_text=True)
    reports_page = ui.get("/reports/").get_data(as_text=True)
    for page in (campaigns_page, reports_page):
        assert f'/campaigns/{world["campaign_a"]}"' in page
        assert f'/campaigns/{world["campaign_b"]}"' not in page


def test_the_menu_offers_only_the_areas_that_keep_to_lists(ui):
    html = ui.get("/").get_data(as_text=True)
    assert 'data-nav="audience.index"' in html and 'data-nav="campaigns.index"' in html
    assert 'data-nav="messages.index"' not in html
    page = ui.get("/audience/suppression")
    assert page.status_code == 403 and "limited to some lists" in page.get_data(as_text=True)


def test_the_new_campaign_form_offers_only_its_lists(ui, world, env):
    page = ui.get("/campaigns/new").get_data(as_text=True)
    assert f'value="{world["a"]}"' in page and f'name="lists" value="{world["b"]}"' not in page
    response = ui.post("/campaigns/new", data={
        "name": "Forged", "message_id": world["message"], "lists": [str(world["b"])],
        "from_email": "news@example.com", "csrf_token": csrf_token(page)})
    assert "not among them" in response.get_data(as_text=True)


def test_the_roles_page_limits_a_role_to_lists(env, client, world):
    env.login(client, env.user("Administrator"))
    page = client.get("/roles").get_data(as_text=True)
    assert "Limited to these lists" in page
    name = f"Picked {uuid.uuid4().hex[:6]}"
    client.post("/roles", data={"name": name, "permissions": ["lists:read"], "lists": [str(world["b"])],
                                "csrf_token": csrf_token(page)})
    with db.read(env.engine) as conn:
        role = next(r for r in access.list_roles(conn) if r["name"] == name)
        entry = access.audit_entries(conn, action="role.create")[0]
    assert role["lists"] == [world["b"]] and entry["details"]["lists"] == [world["b"]]


# --- segments: shared definitions, counted and exported within the role's lists ----------------

def test_segments_count_and_export_only_its_people(client, world, admin):
    auth = world["auth"]
    assert world["segment"] in {s["id"] for s in client.get("/api/v1/segments", headers=auth).json}
    everyone = client.get(f"/api/v1/segments/{world['segment']}/count", headers=admin).json["count"]
    mine = client.get(f"/api/v1/segments/{world['segment']}/count", headers=auth).json["count"]
    assert (everyone, mine) == (3, 2)        # a-, both- (on A) and b- (on B only)
    live = client.post("/api/v1/segments/count", headers=auth, json={"conditions": {"op": "and", "rules": [
        {"field": "email", "operator": "contains", "value": world["tag"]}]}})
    assert live.json["count"] == 2
    csv = client.get(f"/api/v1/segments/{world['segment']}/export.csv", headers=auth).get_data(as_text=True)
    assert f"a-{world['tag']}@" in csv and f"both-{world['tag']}@" in csv and f"b-{world['tag']}@" not in csv


def test_segments_cannot_be_changed_by_a_limited_role(client, world):
    auth = world["auth"]
    created = client.post("/api/v1/segments", headers=auth, json={"name": "Mine", "conditions": {
        "op": "and", "rules": [{"field": "email", "operator": "contains", "value": "x"}]}})
    assert created.status_code == 403
    patched = client.patch(f"/api/v1/segments/{world['segment']}", headers=auth, json={"name": "Renamed"})
    assert patched.status_code == 403 and "shared by every list" in patched.json["detail"]
    assert client.delete(f"/api/v1/segments/{world['segment']}", headers=auth).status_code == 403


def test_the_segments_page_counts_only_its_people(ui, world):
    assert ui.get("/audience/segments").status_code == 200
    assert ui.get(f"/audience/segments/{world['segment']}/count.json").json["count"] == 2


def test_the_opt_in_email_cannot_be_resent_for_another_list_from_the_page(env, ui, world):
    person = unconfirmed_on_b(env, world)
    page = ui.get(f"/audience/subscribers/{person}").get_data(as_text=True)
    ui.post(f"/audience/subscribers/{person}/lists", data={
        "action": "resend", "list": str(world["b"]), "csrf_token": csrf_token(page)})
    assert "not among them" in ui.get(f"/audience/subscribers/{person}").get_data(as_text=True)
    assert not resend_audited(env, person)


def test_the_person_pages_offer_only_its_lists(ui, world):
    form = ui.get("/audience/subscribers/new").get_data(as_text=True)
    assert f'name="lists" value="{world["a"]}"' in form
    assert f'name="lists" value="{world["b"]}"' not in form
    person = ui.get(f"/audience/subscribers/{world['both']}").get_data(as_text=True)
    assert f'<option value="{world["a"]}">' in person
    assert f'<option value="{world["b"]}">' not in person
