"""Per-link UTM marks in the campaign form: the chosen message's links numbered as the click
tracker numbers them, saved through the service the API uses (so the same link_utm is
stored), shown back on edit, refused with the field named."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.messages import service as messages
from altkraft_onprem.sending.compose import Composer
from tests.campaigns.helpers import ACTOR, make_campaign, make_list, make_message, sending_settings
from tests.conftest import csrf_token

HTML = """<html><body>
<p><a href="https://shop.example.com/one">One</a>
<a href="https://shop.example.com/two?x=1">Two</a>
<a href="https://shop.example.com/three">Three</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""

MARKS = {"1": {"utm_content": "second-link", "utm_source": "banner"},
         "2": {"utm_campaign": "third"}}


@pytest.fixture(scope="module")
def world(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    list_id, _ = make_list(env, "Link UTM", [{"email": "lu@example.org"}])
    return settings, list_id, make_message(env, html=HTML, subject="Links")


@pytest.fixture()
def manager(env, client):
    env.login(client, env.user("Manager"))
    return client


def _form(page: str, message_id: int, list_id: int, **fields) -> dict:
    return {"csrf_token": csrf_token(page), "name": "Per link", "message_id": str(message_id),
            "lists": [str(list_id)], "from_email": "news@example.com", "from_name": "News",
            "timezone": "UTC", "track_clicks": "on", "utm_source": "altkraft",
            "utm_medium": "email", **fields}


def _inputs(marks: dict) -> dict:
    return {f"link_utm-{n}-{k}": v for n, values in marks.items() for k, v in values.items()}


def _get(env, campaign_id: int) -> dict:
    with db.read(env.engine) as conn:
        return campaigns.get_campaign(conn, campaign_id)


def test_links_route_numbers_links_as_the_tracker(env, world, manager):
    _, _, message_id = world
    found = manager.get(f"/campaigns/messages/{message_id}/links.json").get_json()["links"]
    with db.read(env.engine) as conn:
        version_id = messages.get_version(conn, message_id)["id"]
        expected = messages.version_links(conn, version_id)
    assert [(x["number"], x["url"]) for x in found] == expected
    assert [x["url"] for x in found] == ["https://shop.example.com/one",
                                         "https://shop.example.com/two?x=1",
                                         "https://shop.example.com/three"]
    assert manager.get("/campaigns/messages/999999/links.json").status_code == 404


def test_links_route_needs_the_forms_permission(env, world, client):
    _, _, message_id = world
    env.login(client, env.user("Viewer"))
    assert client.get(f"/campaigns/messages/{message_id}/links.json").status_code == 403


def test_new_form_lists_links_with_labelled_inputs(env, world, manager):
    _, _, message_id = world
    campaign_id = make_campaign(env, message_id, [world[1]])
    page = manager.get(f"/campaigns/{campaign_id}/edit").get_data(as_text=True)
    assert '<fieldset id="link-utm"' in page and "Per-link UTM marks" in page
    for number in range(3):
        assert f'<label for="link_utm-{number}-utm_content">' in page
        assert f'id="link_utm-{number}-utm_content" name="link_utm-{number}-utm_content"' in page
    assert "https://shop.example.com/two?x=1" in page


def test_form_stores_what_the_api_stores_and_edit_shows_it(env, world, manager):
    _, list_id, message_id = world
    page = manager.get("/campaigns/new").get_data(as_text=True)
    response = manager.post("/campaigns/new", data=_form(page, message_id, list_id, **_inputs(MARKS),
                                                         **{"link_utm-0-utm_content": "  "}))
    assert response.status_code == 302, response.get_data(as_text=True)
    from_form = int(response.location.rstrip("/").rsplit("/", 1)[1])
    token = env.token("Manager")
    api = env.app.test_client().post("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"},
                                     json={"name": "API", "message_id": message_id, "lists": [list_id],
                                           "from_email": "news@example.com", "link_utm": {
                                               **MARKS, "0": {"utm_content": ""}}})
    assert api.status_code == 201, api.get_json()
    assert _get(env, from_form)["link_utm"] == _get(env, api.get_json()["id"])["link_utm"] == MARKS

    edit = manager.get(f"/campaigns/{from_form}/edit").get_data(as_text=True)
    assert 'name="link_utm-1-utm_content" maxlength="200" value="second-link"' in edit
    assert 'name="link_utm-2-utm_campaign" maxlength="200" value="third"' in edit
    assert 'name="link_utm-0-utm_content" maxlength="200" value=""' in edit
    # Edit: link 1 back to the campaign-wide marks, link 0 gets its own.
    changed = {**_inputs({"2": MARKS["2"]}), "link_utm-0-utm_medium": "footer"}
    response = manager.post(f"/campaigns/{from_form}/edit", data=_form(edit, message_id, list_id, **changed))
    assert response.status_code == 302
    assert _get(env, from_form)["link_utm"] == {"0": {"utm_medium": "footer"}, "2": {"utm_campaign": "third"}}


def test_composed_message_carries_the_links_own_marks(env, world):
    """link 1's own utm_content; link 0 only the campaign-wide marks (clicks not tracked:
    the marks are in the message itself)."""
    settings, list_id, message_id = world
    campaign_id = make_campaign(env, message_id, [list_id], link_utm=MARKS, track_clicks=False)
    with db.read(env.engine) as conn:
        campaign = campaigns.get_campaign(conn, campaign_id)
        version = messages.get_version(conn, message_id)
    html = Composer(settings, campaign, version, {}).message.render(
        {"unsubscribe_url": "https://example.com/u"}).html
    assert ("https://shop.example.com/one?utm_source=altkraft&amp;utm_medium=email"
            "&amp;utm_campaign=winter\"") in html
    assert ("https://shop.example.com/two?x=1&amp;utm_source=banner&amp;utm_medium=email"
            "&amp;utm_campaign=winter&amp;utm_content=second-link\"") in html


@pytest.mark.parametrize(("inputs", "field"), [
    ({"link_utm-1-utm_content": "x" * 201}, "link_utm.1.utm_content"),
    ({"link_utm-7-utm_content": "nowhere"}, "link_utm.7"),
])
def test_bad_marks_name_the_field_and_keep_the_input(env, world, manager, inputs, field):
    _, list_id, message_id = world
    campaign_id = make_campaign(env, message_id, [list_id], link_utm={"2": {"utm_source": "kept"}})
    edit = manager.get(f"/campaigns/{campaign_id}/edit").get_data(as_text=True)
    data = _form(edit, message_id, list_id, name="Changed", **inputs,
                 **{"link_utm-2-utm_source": "typed", "link_utm-0-utm_medium": "other"})
    response = manager.post(f"/campaigns/{campaign_id}/edit", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"{field}: " in page and 'id="link-utm-error"' in page
    assert 'value="typed"' in page and 'value="other"' in page and 'value="Changed"' in page
    name = "link_utm-" + field.split(".", 2)[1] + "-utm_content"
    assert f'name="{name}"' in page             # the refused input is still there to correct
    assert _get(env, campaign_id)["link_utm"] == {"2": {"utm_source": "kept"}}


def test_the_api_refuses_a_link_the_message_does_not_have(env, world):
    _, list_id, message_id = world
    token = env.token("Manager")
    response = env.app.test_client().post(
        "/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"},
        json={"name": "API", "message_id": message_id, "lists": [list_id],
              "from_email": "news@example.com", "link_utm": {"9": {"utm_content": "x"}}})
    assert response.status_code == 422
    assert "link_utm.9" in str(response.get_json())


def test_a_copy_leaves_out_marks_of_links_the_message_lost(env, world):
    _, list_id, _ = world
    message_id = make_message(env, html=HTML, subject="Links")
    campaign_id = make_campaign(env, message_id, [list_id], link_utm=MARKS)
    with db.write(env.engine) as conn:
        messages.save_version(conn, ACTOR, message_id, subject="Links", html='<a href="https://a.example/">A</a>'
                                '<a href="https://b.example/">B</a>')
        copy_id = campaigns.duplicate_campaign(conn, ACTOR, campaign_id, "Copy")
    assert _get(env, copy_id)["link_utm"] == {"1": MARKS["1"]}
