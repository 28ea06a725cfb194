"""Editing a draft and duplicating any campaign from the UI (the API could already change
drafts): the edit form is the new-campaign form filled in; a copy is a draft."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from altkraft_onprem import db
from altkraft_onprem.access.models import audit_log
from altkraft_onprem.campaigns import actions
from altkraft_onprem.campaigns import service as campaigns
from tests.campaigns.helpers import ACTOR, make_campaign, make_list, make_message, sending_settings
from tests.conftest import csrf_token


@pytest.fixture(scope="module")
def world(env, sink):
    settings, _ = sending_settings(env, sink, delivery__processes=1)
    env.app.config["ALTKRAFT_SETTINGS"] = settings
    first, _ = make_list(env, "Edit one", [{"email": "e1@example.org"}])
    second, _ = make_list(env, "Edit two", [{"email": "e2@example.org"}])
    return settings, first, second, make_message(env)


@pytest.fixture()
def manager(env, client):
    env.login(client, env.user("Manager"))
    return client


def _form(page: str, **changes) -> dict:
    base = {"csrf_token": csrf_token(page), "name": "Edited", "from_email": "news@example.org",
            "from_name": "News", "timezone": "Europe/Moscow", "track_opens": "on"}
    return {**base, **changes}


def _get(env, campaign_id: int) -> dict:
    with db.read(env.engine) as conn:
        return campaigns.get_campaign(conn, campaign_id)


def test_a_draft_is_edited_with_the_new_campaign_form(env, world, manager):
    _, first, second, message_id = world
    campaign_id = make_campaign(env, message_id, [first], utm={"utm_source": "old"})
    page = manager.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="action-edit"' in page and 'id="action-duplicate"' in page
    form = manager.get(f"/campaigns/{campaign_id}/edit").get_data(as_text=True)
    assert "Edit campaign" in form and 'value="old"' in form and "start_now" not in form
    response = manager.post(f"/campaigns/{campaign_id}/edit", data=_form(
        form, message_id=str(message_id), lists=[str(second)], schedule_at="2031-03-01T09:00",
        utm_source="new"))
    assert response.status_code == 302 and response.location.endswith(f"/campaigns/{campaign_id}")
    found = _get(env, campaign_id)
    assert (found["name"], found["list_ids"], found["utm"], found["state"]) == (
        "Edited", [second], {"utm_source": "new"}, "draft")
    assert found["schedule_at"].strftime("%Y-%m-%d %H:%M") == "2031-03-01 06:00"   # Moscow is UTC+3
    again = manager.get(f"/campaigns/{campaign_id}/edit").get_data(as_text=True)
    assert 'value="2031-03-01T09:00"' in again


def test_bad_input_keeps_the_form_and_names_the_field(env, world, manager):
    _, first, _, message_id = world
    campaign_id = make_campaign(env, message_id, [first])
    form = manager.get(f"/campaigns/{campaign_id}/edit").get_data(as_text=True)
    response = manager.post(f"/campaigns/{campaign_id}/edit", data=_form(
        form, message_id=str(message_id), lists=[str(first)], timezone="Mars/Olympus"))
    assert response.status_code == 200 and "Mars/Olympus" in response.get_data(as_text=True)
    assert _get(env, campaign_id)["timezone"] == "UTC"


def test_a_started_campaign_is_not_edited_but_can_be_duplicated(env, world, manager):
    settings, first, _, message_id = world
    campaign_id = make_campaign(env, message_id, [first], utm={"utm_campaign": "spring"})
    actions.perform(ACTOR, settings, campaign_id, "start", engine=env.engine)
    page = manager.get(f"/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'id="action-edit"' not in page
    response = manager.get(f"/campaigns/{campaign_id}/edit")
    assert response.status_code == 302
    response = manager.post(f"/campaigns/{campaign_id}/duplicate",
                            data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302 and response.location.endswith("/edit")
    copy_id = int(response.location.removesuffix("/edit").rsplit("/", 1)[1])
    source, copy = _get(env, campaign_id), _get(env, copy_id)
    assert copy["state"] == "draft" and copy["name"] == f"Copy of {source['name']}"
    assert {k: copy[k] for k in campaigns.COPIED} == {k: source[k] for k in campaigns.COPIED}
    assert (copy["started_at"], copy["total"], copy["version_id"]) == (None, 0, None)
    with db.read(env.engine) as conn:
        assert conn.execute(select(audit_log.c.details).where(
            audit_log.c.action == "campaign.duplicate",
            audit_log.c.target_id == str(copy_id))).scalar() == f'{{"source": {campaign_id}}}'


def test_duplicate_needs_csrf(env, world, manager):
    _, first, _, message_id = world
    campaign_id = make_campaign(env, message_id, [first])
    assert manager.post(f"/campaigns/{campaign_id}/duplicate").status_code == 400
