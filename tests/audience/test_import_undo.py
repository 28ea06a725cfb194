"""Import undo: POST /api/v1/imports/{id}/undo (and the import page's button) puts the people an
import added into the trash as one batch, removes the memberships it added and restores the
fields it changed — keeping what was edited since, and saying how many."""
from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import audit_log, system_actor
from altkraft_onprem.audience import trash
from altkraft_onprem.audience.importer.models import import_changes, imports
from altkraft_onprem.audience.models import subscriber_lists, subscribers
from altkraft_onprem.db.types import utcnow
from tests.conftest import PASSWORD, csrf_token

COUNTS = {"trashed": 2, "memberships_removed": 3, "fields_restored": 2, "kept_edits": 2}


def uid() -> str:
    return uuid.uuid4().hex[:8]


def find(api, email: str) -> dict:
    found = api("GET", f"/subscribers?email={email}").get_json()
    assert len(found) == 1, found
    return found[0]


def row(env, subscriber_id: int):
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()


def memberships(env, subscriber_id: int) -> dict[int, str]:
    with db.read(env.engine) as conn:
        return {r.list_id: r.status for r in conn.execute(select(subscriber_lists).where(
            subscriber_lists.c.subscriber_id == subscriber_id))}


def upload(api, csv_text: str, list_id: int, mapping: dict) -> int:
    response = api("POST", "/imports", content_type="multipart/form-data", data={
        "file": (io.BytesIO(csv_text.encode()), "people.csv"), "list": str(list_id),
        "mode": "upsert", "mapping": json.dumps(mapping)})
    assert response.status_code == 202, response.get_json()
    import_id = response.get_json()["id"]
    assert api("GET", f"/imports/{import_id}").get_json()["state"] == "finished"
    return import_id


def undo(api, import_id: int, dry_run: bool = False, token: str | None = None):
    return api("POST", f"/imports/{import_id}/undo" + ("?dry_run=1" if dry_run else ""), token=token)


@pytest.fixture()
def imported(env, api):
    """Four people exist (e1..e4; e3 already on the target list), a CSV import into the target
    list adds n1..n3, changes e1's city and e3's tier and e2's city, adds e1, e2, e4 to the
    list; afterwards e2's city and n3's name are edited by hand."""
    tag = uid()
    key = f"tier_{tag}"
    assert api("POST", "/fields", json={"key": key, "type": "text"}).status_code == 201
    target = api("POST", "/lists", json={"name": f"undo-{tag}"}).get_json()["id"]
    other = api("POST", "/lists", json={"name": f"other-{tag}"}).get_json()["id"]
    email = {name: f"{name}-{tag}@example.com" for name in ("e1", "e2", "e3", "e4", "n1", "n2", "n3")}
    for name, city, tier, lists in (("e1", "Kazan", "bronze", [other]), ("e2", "Omsk", "bronze", []),
                                    ("e3", "Ufa", "gold", [target]), ("e4", "Kem", "bronze", [])):
        result = api("POST", "/subscribers/import", json={"lists": lists, "subscribers": [
            {"email": email[name], "city": city, "fields": {key: tier}}]}).get_json()
        assert result["results"][0]["status"] == "added"
    csv_text = "email,city,tier\n" + "".join(f"{email[n]},{c},{t}\n" for n, c, t in (
        ("e1", "Perm", "bronze"), ("e2", "Tver", "bronze"), ("e3", "Ufa", "silver"),
        ("e4", "Kem", "bronze"), ("n1", "Kursk", "new"), ("n2", "Orel", "new"), ("n3", "Tula", "new")))
    import_id = upload(api, csv_text, target, {"email": "email", "city": "city", "tier": f"custom.{key}"})
    ids = {name: find(api, address)["id"] for name, address in email.items()}
    assert api("PATCH", f"/subscribers/{ids['e2']}", json={"city": "Sochi"}).status_code == 200
    assert api("PATCH", f"/subscribers/{ids['n3']}", json={"first_name": "Nina"}).status_code == 200
    return {"id": import_id, "ids": ids, "target": target, "other": other, "key": key, "tag": tag}


def test_dry_run_counts_and_changes_nothing(env, api, imported):
    response = undo(api, imported["id"], dry_run=True)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == COUNTS
    ids = imported["ids"]
    assert row(env, ids["n1"]).deleted_at is None
    assert row(env, ids["e1"]).city == "Perm"
    assert imported["target"] in memberships(env, ids["e1"])
    assert undo(api, imported["id"]).get_json() == COUNTS     # a dry run does not use it up


def test_undo_answers_the_counts(api, imported):
    response = undo(api, imported["id"])
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == COUNTS


def test_added_people_go_to_the_trash_as_one_restorable_batch(env, api, imported):
    undo(api, imported["id"])
    ids = imported["ids"]
    n1, n2 = row(env, ids["n1"]), row(env, ids["n2"])
    assert n1.deleted_at is not None and n1.deleted_batch is not None
    assert n2.deleted_batch == n1.deleted_batch
    with db.write(env.engine) as conn:
        assert trash.restore(conn, system_actor(), batch=n1.deleted_batch) == 2
    assert row(env, ids["n1"]).deleted_at is None
    assert memberships(env, ids["n1"]) == {imported["target"]: "confirmed"}   # whole again


def test_memberships_it_added_are_removed_and_others_stay(env, api, imported):
    undo(api, imported["id"])
    ids, target = imported["ids"], imported["target"]
    assert memberships(env, ids["e1"]) == {imported["other"]: "confirmed"}
    assert memberships(env, ids["e4"]) == {}
    assert memberships(env, ids["e3"]) == {target: "confirmed"}      # was on the list before


def test_fields_it_changed_get_their_previous_values(env, api, imported):
    undo(api, imported["id"])
    ids, key = imported["ids"], imported["key"]
    assert row(env, ids["e1"]).city == "Kazan"
    assert row(env, ids["e3"]).custom[key] == "gold"
    assert row(env, ids["e4"]).city == "Kem"


def test_edits_made_since_the_import_are_kept(env, api, imported):
    undo(api, imported["id"])
    ids = imported["ids"]
    assert row(env, ids["e2"]).city == "Sochi"
    n3 = row(env, ids["n3"])
    assert n3.deleted_at is None and n3.first_name == "Nina"
    job = api("GET", f"/imports/{imported['id']}").get_json()
    assert job["undone_at"] is not None


def test_an_unsubscribe_since_the_import_is_kept(env, api, imported):
    ids, target = imported["ids"], imported["target"]
    assert api("PATCH", f"/subscribers/{ids['e4']}", json={"lists": {str(target): "unsubscribed"}}
               ).status_code == 200
    result = undo(api, imported["id"]).get_json()
    assert result == {**COUNTS, "memberships_removed": 2, "kept_edits": 3}
    assert memberships(env, ids["e4"]) == {target: "unsubscribed"}


def test_a_person_brought_back_from_the_trash_goes_back(env, api):
    tag = uid()
    target = api("POST", "/lists", json={"name": f"back-{tag}"}).get_json()["id"]
    address = f"back-{tag}@example.com"
    person = api("POST", "/subscribers", json={"email": address, "city": "Kazan", "lists": [target]}
                 ).get_json()["id"]
    assert api("DELETE", f"/subscribers/{person}").status_code == 200
    import_id = upload(api, f"email,city\n{address},Perm\n", target, {"email": "email", "city": "city"})
    assert row(env, person).deleted_at is None
    assert undo(api, import_id).get_json() == {"trashed": 1, "memberships_removed": 0,
                                               "fields_restored": 1, "kept_edits": 0}
    back = row(env, person)
    assert back.deleted_at is not None and back.city == "Kazan"


def test_undo_twice_is_409(api, imported):
    assert undo(api, imported["id"]).status_code == 200
    again = undo(api, imported["id"])
    assert again.status_code == 409
    assert "undone already" in again.get_json()["detail"]
    assert undo(api, imported["id"], dry_run=True).status_code == 409


def test_undo_is_audited(env, api, imported):
    undo(api, imported["id"])
    with db.read(env.engine) as conn:
        entry = conn.execute(select(audit_log).where(
            audit_log.c.action == "import.undo", audit_log.c.target_id == str(imported["id"]))).one()
    details = json.loads(entry.details)
    assert {k: details[k] for k in COUNTS} == COUNTS
    assert sorted(details["kept_ids"]) == sorted([imported["ids"]["e2"], imported["ids"]["n3"]])


def test_unknown_import_is_404(api):
    assert undo(api, 99_999_999).status_code == 404


@pytest.mark.parametrize("change,reason", [
    ({"state": "running"}, "still running"),
    ({"finished_at": utcnow() - timedelta(days=31)}, "trash period"),
    ({"undoable": False}, "recorded"),
])
def test_an_import_that_cannot_be_undone_is_409_with_the_reason(env, api, imported, change, reason):
    with db.write(env.engine) as conn:
        conn.execute(update(imports).where(imports.c.id == imported["id"]).values(**change))
    response = undo(api, imported["id"])
    assert response.status_code == 409
    assert reason in response.get_json()["detail"]
    assert row(env, imported["ids"]["n1"]).deleted_at is None


def test_an_api_bulk_import_records_nothing(env, api):
    address = f"bulk-{uid()}@example.com"
    api("POST", "/subscribers/import", json={"subscribers": [{"email": address, "city": "A"}]})
    api("POST", "/subscribers/import", json={"subscribers": [{"email": address, "city": "B"}]})
    with db.read(env.engine) as conn:
        assert conn.execute(select(import_changes).where(
            import_changes.c.subscriber_id == find(api, address)["id"])).first() is None


def test_changes_are_forgotten_after_the_trash_period(env, api, imported):
    from altkraft_onprem.audience.importer.undo import purge_changes

    with db.write(env.engine) as conn:
        conn.execute(update(imports).where(imports.c.id == imported["id"]).values(
            finished_at=utcnow() - timedelta(days=31)))
        assert purge_changes(conn, 30) >= 5
        assert conn.execute(select(import_changes).where(
            import_changes.c.import_id == imported["id"])).first() is None


# --- roles limited to some lists ---------------------------------------------------------------

def limited_token(env, list_ids) -> str:
    tag = uid()
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, system_actor(), f"Undo team {tag}",
                                     ["subscribers:import", "lists:read"], lists=list_ids)
        user_id = access.create_user(conn, system_actor(), f"undo-{tag}@example.com", PASSWORD, role_id)
        return access.create_token(conn, system_actor(), user_id, "t")[1]


def test_a_role_limited_to_other_lists_cannot_undo(env, api, imported):
    token = limited_token(env, [imported["other"]])
    assert undo(api, imported["id"], dry_run=True, token=token).status_code == 404
    assert undo(api, imported["id"], token=token).status_code == 404
    assert row(env, imported["ids"]["n1"]).deleted_at is None


def test_a_role_limited_to_the_import_lists_may_undo(env, api, imported):
    token = limited_token(env, [imported["target"]])
    response = undo(api, imported["id"], dry_run=True, token=token)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == COUNTS


def test_a_limited_role_cannot_undo_an_import_into_no_list(env, api):
    address = f"nolist-{uid()}@example.com"
    response = api("POST", "/imports", content_type="multipart/form-data", data={
        "file": (io.BytesIO(f"email\n{address}\n".encode()), "a.csv"), "list": ""})
    import_id = response.get_json()["id"]
    some_list = api("POST", "/lists", json={"name": f"l-{uid()}"}).get_json()["id"]
    response = undo(api, import_id, token=limited_token(env, [some_list]))
    assert response.status_code == 403
    assert find(api, address)["state"] == "active"


def test_the_route_is_in_the_openapi_document(env):
    document = env.app.test_client().get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/imports/{import_id}/undo"]["post"]
    assert "409" in operation["responses"]
    assert {p["name"] for p in operation["parameters"]} >= {"import_id", "dry_run"}
    assert "subscribers:import" in json.dumps(operation)
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    assert set(document["components"]["schemas"][name]["properties"]) == set(COUNTS)


# --- the import's page -----------------------------------------------------------------------

@pytest.fixture()
def signed_in(env, client):
    env.login(client, env.user("Editor"))
    return client


def test_the_page_shows_the_dry_run_then_the_result(env, signed_in, imported):
    show = signed_in.get(f"/audience/import/{imported['id']}").get_data(as_text=True)
    assert 'id="undo-link"' in show
    page = signed_in.get(f"/audience/import/{imported['id']}/undo")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<td data-undo="trashed">2</td>' in html and '<td data-undo="kept_edits">2</td>' in html
    assert row(env, imported["ids"]["n1"]).deleted_at is None          # only counted
    done = signed_in.post(f"/audience/import/{imported['id']}/undo",
                          data={"csrf_token": csrf_token(html)})
    assert done.status_code == 302
    result = signed_in.get(done.headers["Location"]).get_data(as_text=True)
    assert 'id="import-undone"' in result and 'id="undo-link"' not in result
    assert '<td data-undo="fields_restored">2</td>' in result
    assert f"n3-{imported['tag']}@example.com" in result and f"e2-{imported['tag']}@example.com" in result
    assert row(env, imported["ids"]["n1"]).deleted_at is not None


def test_the_page_refuses_a_post_without_the_csrf_token(env, signed_in, imported):
    response = signed_in.post(f"/audience/import/{imported['id']}/undo", data={})
    assert response.status_code == 400
    assert row(env, imported["ids"]["n1"]).deleted_at is None


def test_the_page_says_why_an_undo_is_refused(signed_in, api, imported):
    undo(api, imported["id"])
    response = signed_in.get(f"/audience/import/{imported['id']}/undo")
    assert response.status_code == 409
    assert "undone already" in response.get_data(as_text=True)


def test_the_page_offers_the_undo_only_once_the_import_has_ended(env, signed_in, imported):
    with db.write(env.engine) as conn:
        conn.execute(update(imports).where(imports.c.id == imported["id"]).values(state="running"))
    html = signed_in.get(f"/audience/import/{imported['id']}").get_data(as_text=True)
    assert '<span id="undo-action" hidden>' in html         # progress.js shows it at the end
