"""The automation pages through the app: list, create, the builder's draft save, publish,
enroll with the person's "why", the webhook pages and their permission checks."""
from __future__ import annotations

import re

from altkraft_onprem import db
from altkraft_onprem.automation import workflows
from tests.conftest import csrf_token

from .helpers import ACTOR, chain, person, published


def signed_in(env, client, role="Administrator"):
    env.login(client, env.user(role))
    return client


def test_create_save_publish_and_enroll_from_the_pages(env, client):
    signed_in(env, client)
    page = client.get("/automation")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    created = client.post("/automation/workflows", data={"name": "Welcome", "csrf_token": token})
    assert created.status_code == 302
    builder_url = created.headers["Location"]
    workflow_id = int(re.search(r"/workflows/(\d+)", builder_url).group(1))
    html = client.get(builder_url).get_data(as_text=True)
    assert 'id="drawflow"' in html
    definition = chain(("w", "wait", {"duration": "P2D"}), name="Welcome")
    saved = client.post(f"/automation/workflows/{workflow_id}/draft", json=definition,
                        headers={"X-CSRFToken": token})
    assert saved.status_code == 200, saved.get_json()
    assert client.post(f"/automation/workflows/{workflow_id}/publish",
                       data={"csrf_token": token}).status_code == 302
    subscriber_id = person(env, timezone="Europe/Moscow")
    enrolled = client.post(f"/automation/workflows/{workflow_id}/enroll",
                           data={"csrf_token": token, "people": str(subscriber_id)})
    assert enrolled.status_code == 302
    html = client.get(builder_url).get_data(as_text=True)
    assert "waiting at w until" in html and "Europe/Moscow" in html


def test_a_viewer_sees_but_cannot_change(env, client):
    workflow_id = published(env, chain(("g", "goal", {"name": "x"})))
    signed_in(env, client, "Viewer")
    html = client.get(f"/automation/workflows/{workflow_id}").get_data(as_text=True)
    assert 'id="publish"' not in html
    token = csrf_token(html)
    answer = client.post(f"/automation/workflows/{workflow_id}/pause", data={"csrf_token": token})
    assert answer.status_code == 403


def test_the_webhook_pages_create_and_show_the_log(env, client, receiver):
    signed_in(env, client)
    page = client.get("/automation/webhooks").get_data(as_text=True)
    token = csrf_token(page)
    created = client.post("/automation/webhooks", data={
        "csrf_token": token, "url": receiver.url("/page"), "events": ["subscriber.created"]})
    assert created.status_code == 302
    person(env)
    shown = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "subscriber.created" in shown and "delivered" in shown


def test_publishing_a_bad_workflow_shows_the_node_and_reason(env, client):
    with db.write(env.engine) as conn:
        workflow_id = workflows.create(conn, ACTOR, chain(("a", "teleport", {})))
    signed_in(env, client)
    token = csrf_token(client.get("/automation").get_data(as_text=True))
    answer = client.post(f"/automation/workflows/{workflow_id}/publish", data={"csrf_token": token},
                         follow_redirects=True)
    assert "unknown node type &#39;teleport&#39;" in answer.get_data(as_text=True)


def test_the_subscriber_timeline_shows_workflow_steps(env, client):
    from .helpers import enroll

    workflow_id = published(env, chain(("welcome", "goal", {"name": "hi"}), name="Timeline flow"))
    subscriber_id = person(env)
    enroll(env, workflow_id, subscriber_id)
    signed_in(env, client)
    html = client.get(f"/audience/subscribers/{subscriber_id}").get_data(as_text=True)
    assert "workflow_step" in html and "workflow=Timeline flow" in html and "step=welcome" in html


def test_a_webhook_for_one_list_its_new_secret_and_its_deletion_from_the_pages(env, client, receiver):
    from altkraft_onprem.automation import webhooks

    from .helpers import a_list

    list_id = a_list(env)
    signed_in(env, client)
    token = csrf_token(client.get("/automation/webhooks").get_data(as_text=True))
    created = client.post("/automation/webhooks", data={
        "csrf_token": token, "url": receiver.url("/listed"), "events": ["subscriber.created"],
        "list_id": str(list_id)})
    page_url = created.headers["Location"]
    webhook_id = int(page_url.rsplit("/", 1)[1])
    with db.read(env.engine) as conn:
        assert webhooks.get(conn, webhook_id)["list_id"] == list_id
    assert "only members of" in client.get(page_url).get_data(as_text=True)
    rotated = client.post(f"{page_url}/secret", data={"csrf_token": token}, follow_redirects=True)
    assert "A new secret (shown once): whsec_" in rotated.get_data(as_text=True)
    with db.read(env.engine) as conn:
        assert webhooks.get(conn, webhook_id, with_secrets=True)["previous_secret"]
    failed_only = client.get(f"{page_url}?state=failed").get_data(as_text=True)
    assert "Nothing sent yet." in failed_only
    deleted = client.post(f"{page_url}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "Webhook deleted." in deleted.get_data(as_text=True)
    assert client.get(page_url).status_code == 404


def test_publish_with_a_node_map_and_archive_need_their_inputs(env, client):
    workflow_id = published(env, chain(("w", "wait", {"duration": "P1D"}),
                                       ("g", "goal", {"name": "x"})))
    subscriber_id = person(env)
    from .helpers import enroll, enrollment_of

    enroll(env, workflow_id, subscriber_id)
    signed_in(env, client)
    url = f"/automation/workflows/{workflow_id}"
    token = csrf_token(client.get(url).get_data(as_text=True))
    bad = client.post(f"{url}/publish", data={"csrf_token": token, "node_map": "[1, 2]"},
                      follow_redirects=True)
    assert "the node map must be a JSON object of step ids" in bad.get_data(as_text=True)
    moved = client.post(f"{url}/publish", data={"csrf_token": token, "node_map": '{"w": "g"}'},
                        follow_redirects=True)
    assert "Version 2 published." in moved.get_data(as_text=True)
    assert enrollment_of(env, workflow_id, subscriber_id)["state"] == "done"
    unconfirmed = client.post(f"{url}/archive", data={"csrf_token": token}, follow_redirects=True)
    assert "confirm that everyone inside leaves" in unconfirmed.get_data(as_text=True)
    with db.read(env.engine) as conn:
        assert workflows.get(conn, workflow_id)["state"] == "active"
    archived = client.post(f"{url}/archive", data={"csrf_token": token, "confirm": "on"},
                           follow_redirects=True)
    assert "Workflow archived." in archived.get_data(as_text=True)


def test_stats_count_conversions_per_node(env):
    from altkraft_onprem.automation import enrollment

    from .helpers import enroll

    workflow_id = published(env, chain(
        ("c", "condition", {"conditions": {"op": "and", "rules": [
            {"field": "city", "operator": "eq", "value": "Goalville"}]}}),
        ("won", "goal", {"name": "bought"}),
        edges=[{"from": "c", "to": "won", "branch": "yes"}]))
    enroll(env, workflow_id, person(env, city="Goalville"), person(env), person(env))
    with db.read(env.engine) as conn:
        figures = enrollment.stats(conn, workflow_id)
    assert figures["c"]["done"] == 3 and figures["c"]["converted"] == 1
    assert figures["won"]["done"] == 1 and figures["won"]["converted"] == 1
