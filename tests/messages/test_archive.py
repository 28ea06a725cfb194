"""The message list: pages, search by name or subject (Cyrillic too), and deleting (archiving)
a message no campaign uses; one that a campaign or a split-test variant uses stays, and the
refusal names the campaigns."""
from __future__ import annotations

import pytest

from altkraft_onprem import db
from altkraft_onprem.errors import Conflict
from altkraft_onprem.messages import service
from tests.campaigns.helpers import ACTOR, make_campaign, make_list
from tests.conftest import csrf_token


def _message(env, name: str, subject: str = "Hello") -> int:
    with db.write(env.engine) as conn:
        return service.create_message(conn, ACTOR, name, subject=subject, html="<p>x</p>")[0]


@pytest.fixture(scope="module")
def catalogue(env):
    ids = [_message(env, f"Weekly digest {n}") for n in range(7)]
    ids.append(_message(env, "Весенняя распродажа", subject="Скидки до 40%"))
    ids.append(_message(env, "Plain name", subject="Winter SALE now"))
    return ids


def test_pages_cover_every_message_once(env, catalogue):
    with db.read(env.engine) as conn:
        first, total = service.browse_messages(conn, "weekly digest", limit=4, offset=0)
        second, _ = service.browse_messages(conn, "weekly digest", limit=4, offset=4)
    assert total == 7 and len(first) == 4 and len(second) == 3
    assert {m["id"] for m in first + second} == set(catalogue[:7])


@pytest.mark.parametrize("search", ["весенняя", "ВЕСЕННЯЯ", "Весенняя", "распродажа"])
def test_search_finds_cyrillic_names_in_any_case(env, catalogue, search):
    with db.read(env.engine) as conn:
        rows, total = service.browse_messages(conn, search)
    assert total == 1 and rows[0]["id"] == catalogue[7]


def test_search_looks_at_the_subject_too(env, catalogue):
    with db.read(env.engine) as conn:
        assert [m["id"] for m in service.browse_messages(conn, "winter sale")[0]] == [catalogue[8]]
        assert [m["id"] for m in service.browse_messages(conn, "скидки")[0]] == [catalogue[7]]


def test_search_treats_like_wildcards_as_text(env, catalogue):
    with db.read(env.engine) as conn:
        assert service.browse_messages(conn, "_")[1] == 0
        assert service.browse_messages(conn, "4%")[1] == 0
        assert service.browse_messages(conn, "40%")[1] == 1


def test_archived_message_leaves_the_list_and_comes_back(env):
    message_id = _message(env, "Short-lived")
    with db.write(env.engine) as conn:
        service.archive_message(conn, ACTOR, message_id)
    with db.read(env.engine) as conn:
        assert message_id not in {m["id"] for m in service.list_messages(conn)}
        assert message_id in {m["id"] for m in service.browse_messages(conn, archived=True)[0]}
        assert service.get_version(conn, message_id)["html"] == "<p>x</p>"    # versions kept
    with db.write(env.engine) as conn:
        service.unarchive_message(conn, ACTOR, message_id)
    with db.read(env.engine) as conn:
        assert message_id in {m["id"] for m in service.list_messages(conn)}


def test_message_a_campaign_uses_cannot_be_deleted(env):
    message_id = _message(env, "In use")
    list_id, _ = make_list(env, "Archive test list", [{"email": "a1@example.net"}])
    make_campaign(env, message_id, [list_id], name="Black Friday")
    with db.write(env.engine) as conn, pytest.raises(Conflict) as refused:
        service.archive_message(conn, ACTOR, message_id)
    assert "Black Friday" in refused.value.message
    with db.read(env.engine) as conn:
        assert service.get_message(conn, message_id)["archived_at"] is None


def test_message_of_a_split_test_variant_cannot_be_deleted(env):
    main, variant = _message(env, "Variant A"), _message(env, "Variant B")
    list_id, _ = make_list(env, "Split archive list", [{"email": "a2@example.net"}])
    make_campaign(env, main, [list_id], name="Subject duel",
                  split_test={"variants": [{}, {"message_id": variant}]})
    with db.write(env.engine) as conn, pytest.raises(Conflict) as refused:
        service.archive_message(conn, ACTOR, variant)
    assert "Subject duel" in refused.value.message


def test_api_delete_archives_and_409_names_the_campaign(env, api):
    free, used = _message(env, "API free"), _message(env, "API used")
    list_id, _ = make_list(env, "API archive list", [{"email": "a3@example.net"}])
    make_campaign(env, used, [list_id], name="Cyber Monday")
    assert api("DELETE", f"/messages/{free}").status_code == 204
    listed = api("GET", "/messages?search=API").get_json()
    assert [m["name"] for m in listed] == ["API used"]
    archived = api("GET", "/messages?search=API&archived=true").get_json()
    assert [m["name"] for m in archived] == ["API free"] and archived[0]["archived_at"]
    refused = api("DELETE", f"/messages/{used}")
    assert refused.status_code == 409 and "Cyber Monday" in refused.get_data(as_text=True)
    assert api("POST", f"/messages/{free}/unarchive").status_code == 204
    assert api("DELETE", "/messages/999999").status_code == 404


def test_api_list_pages(env, api, catalogue):
    first = api("GET", "/messages?search=weekly&limit=5").get_json()
    rest = api("GET", "/messages?search=weekly&limit=5&offset=5").get_json()
    assert len(first) == 5 and len(rest) == 2
    assert api("GET", "/messages?limit=0").status_code == 422


def test_ui_list_pages_and_deletes(env, client, catalogue):
    env.login(client, env.user("Editor"))
    page = client.get("/messages?q=weekly")
    html = page.get_data(as_text=True)
    assert "7 messages" in html
    free = _message(env, "UI free")
    token = csrf_token(html)
    response = client.post(f"/messages/{free}/archive", data={"csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200 and "UI free" not in response.get_data(as_text=True).split(
        'id="messages"')[1]
    assert "UI free" in client.get("/messages?archived=1").get_data(as_text=True)


def test_ui_refusal_names_the_campaign(env, client):
    env.login(client, env.user("Editor"))
    used = _message(env, "UI used")
    list_id, _ = make_list(env, "UI archive list", [{"email": "a4@example.net"}])
    make_campaign(env, used, [list_id], name="Spring launch")
    token = csrf_token(client.get("/messages").get_data(as_text=True))
    response = client.post(f"/messages/{used}/archive", data={"csrf_token": token}, follow_redirects=True)
    assert "Spring launch" in response.get_data(as_text=True)
