"""REST: GET /bounces (filters), POST /bounces (generic intake), GET /complaints, reclassify."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.models import audit_log
from altkraft_onprem.audience.models import subscribers
from tests.campaigns.helpers import make_list

PEOPLE = [{"email": f"api{i}@gmail.com"} for i in range(4)]


@pytest.fixture(scope="module")
def world(env):
    _list_id, ids = make_list(env, "API bounces", PEOPLE)
    return {"ids": ids, "admin": env.token("Administrator"), "viewer": env.token("Viewer")}


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _state(env, subscriber_id: int) -> str:
    with db.read(env.engine) as conn:
        return conn.execute(select(subscribers.c.state).where(subscribers.c.id == subscriber_id)).scalar_one()


def test_posted_hard_bounce_is_classified_and_suppresses(env, client, world):
    response = client.post("/api/v1/bounces", headers=_h(world["admin"]), json={
        "email": "api0@gmail.com", "diagnostic": "550 5.1.1 The email account does not exist"})
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert (body["state"], body["bounce_class"], body["suppressed"]) == ("processed", "hard", True)
    assert _state(env, world["ids"][0]) == "bounced"


def test_posted_delay_is_not_a_bounce(env, client, world):
    response = client.post("/api/v1/bounces", headers=_h(world["admin"]), json={
        "email": "api1@gmail.com", "status": "4.4.1", "action": "delayed"})
    assert response.get_json() == {"id": None, "state": "ignored", "bounce_class": None, "suppressed": None}
    assert _state(env, world["ids"][1]) == "active"


def test_posted_bounce_with_a_bad_address_is_a_clear_error(client, world):
    response = client.post("/api/v1/bounces", headers=_h(world["admin"]), json={"email": "not an address"})
    assert response.status_code in (400, 422)
    assert "email" in response.get_data(as_text=True)


def test_posting_needs_the_suppression_permission(client, world):
    response = client.post("/api/v1/bounces", headers=_h(world["viewer"]), json={"email": "api2@gmail.com"})
    assert response.status_code == 403


def test_list_filters_by_class_and_since(client, world):
    client.post("/api/v1/bounces", headers=_h(world["admin"]), json={
        "email": "api2@gmail.com", "status": "5.7.1", "diagnostic": "blocked using zen.spamhaus.org"})
    hard = client.get("/api/v1/bounces?class=hard", headers=_h(world["viewer"])).get_json()
    policy = client.get("/api/v1/bounces?class=policy", headers=_h(world["viewer"])).get_json()
    assert [b["email"] for b in hard] == ["api0@gmail.com"]
    assert [(b["email"], b["provider"], b["suppressed"]) for b in policy] == [("api2@gmail.com", "gmail", False)]
    later = client.get("/api/v1/bounces?since=2999-01-01T00:00:00Z", headers=_h(world["viewer"])).get_json()
    assert later == []
    bad = client.get("/api/v1/bounces?class=dead", headers=_h(world["viewer"]))
    assert bad.status_code in (400, 422)


def test_reclassify_by_hand_suppresses_and_is_audited(env, client, world):
    policy = client.get("/api/v1/bounces?class=policy", headers=_h(world["viewer"])).get_json()[0]
    response = client.post(f"/api/v1/bounces/{policy['id']}/reclassify", headers=_h(world["admin"]),
                           json={"bounce_class": "hard"})
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["bounce_class"], response.get_json()["rule"],
            response.get_json()["suppressed"]) == ("hard", "manual", True)
    assert _state(env, world["ids"][2]) == "bounced"
    with db.read(env.engine) as conn:
        actions = conn.execute(select(audit_log.c.action).where(
            audit_log.c.target_type == "bounce")).scalars().all()
    assert actions == ["bounce.reclassify"]


def test_reclassify_by_the_rules_is_reproducible(client, world):
    hard = client.get("/api/v1/bounces?class=hard", headers=_h(world["viewer"])).get_json()
    first = [b for b in hard if b["email"] == "api0@gmail.com"][0]
    again = client.post(f"/api/v1/bounces/{first['id']}/reclassify", headers=_h(world["admin"]), json={})
    assert (again.get_json()["bounce_class"], again.get_json()["rule"]) == (first["bounce_class"], first["rule"])


def test_reclassify_of_a_missing_bounce_is_404(client, world):
    assert client.post("/api/v1/bounces/999999/reclassify", headers=_h(world["admin"]), json={}).status_code == 404


def test_complaints_list_is_readable(client, world):
    response = client.get("/api/v1/complaints?campaign=1", headers=_h(world["viewer"]))
    assert response.status_code == 200 and response.get_json() == []
