"""The public archive: a list's archive_slug and a campaign's archive flag (API and pages);
/archive/SLUG and its Atom feed list the list's finished archived campaigns newest first; each
copy is the sent version for a placeholder recipient, without tracking or the recipient's own
links, under the view-in-browser page's sandbox CSP; anything forged or withdrawn is 404."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.campaigns import jobs
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.models import campaigns as campaigns_table
from altkraft_onprem.messages import webview
from altkraft_onprem.messages.service import get_version
from altkraft_onprem.sending.webview import WEBVIEW_CSP
from tests.automation.conftest import module_env
from tests.conftest import PASSWORD, Env, csrf_token
from tests.delivery.keys import write_keys

from .helpers import ACTOR, make_campaign, make_list, make_message

ATOM = "{http://www.w3.org/2005/Atom}"
ISSUE_HTML = """<html><body>
<p id="greeting">Hello {{ subscriber.first_name }}, news for {{ list.name }}.</p>
<p><a href="https://shop.example.com/sale">Sale</a></p>
<p><a href="{{ view_in_browser_url }}">View in browser</a> ·
   <a href="{{ unsubscribe_url }}">Unsubscribe</a> · <a href="{{ preferences_url }}">Preferences</a></p>
</body></html>"""


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, module_smtp_sink) -> Env:
    entries, _ = write_keys(tmp_path_factory.mktemp("dkim"))
    yield from module_env(template_db, tmp_path_factory, smtp__relays=[module_smtp_sink.relay()],
                          dkim__keys=entries, delivery__processes=1)


@pytest.fixture(scope="module")
def token(env) -> str:
    return env.token("Administrator")


def api(client, token, method, path, body=None):
    return client.open(f"/api/v1{path}", method=method, json=body,
                       headers={"Authorization": f"Bearer {token}"})


def sent(env, name: str, list_ids: list[int], *, archive: bool = True) -> int:
    """A campaign sent to the sink and finished."""
    message_id = make_message(env, html=ISSUE_HTML, subject=f"{name} for {{{{ subscriber.first_name }}}}")
    campaign_id = make_campaign(env, message_id, list_ids, name=name, archive=archive)
    with db.write(env.engine) as conn:
        campaigns.start(conn, ACTOR, env.settings, campaign_id)
    with env.app.app_context():
        jobs.run_campaign(env.settings, env.engine, campaign_id)
    with db.read(env.engine) as conn:
        assert campaigns.state(conn, campaign_id) == "finished"
    return campaign_id


@pytest.fixture(scope="module")
def world(env, client_module, token) -> dict:
    news, _ = make_list(env, "News", [{"email": "ann@example.org", "first_name": "Ann"}])
    other, _ = make_list(env, "Other", [{"email": "bob@example.org", "first_name": "Bob"}])
    assert api(client_module, token, "PATCH", f"/lists/{news}", {"archive_slug": "News-Letter"}
               ).get_json()["archive_slug"] == "news-letter"
    first = sent(env, "First issue", [news])
    second = sent(env, "Second issue", [news, other])
    hidden = sent(env, "Not archived", [news], archive=False)
    elsewhere = sent(env, "Other list", [other])
    message_id = make_message(env, html=ISSUE_HTML)
    draft = make_campaign(env, message_id, [news], name="Draft", archive=True)
    return {"news": news, "other": other, "first": first, "second": second, "hidden": hidden,
            "elsewhere": elsewhere, "draft": draft}


@pytest.fixture(scope="module")
def client_module(env):
    return env.app.test_client()


def copy_url(env, slug: str, campaign_id: int) -> str:
    with db.read(env.engine) as conn:
        version_id = campaigns.get_campaign(conn, campaign_id)["version_id"]
    return f"/archive/{slug}/{webview.archive_token(env.settings, campaign_id, version_id)}"


def test_the_archive_lists_finished_archived_campaigns_newest_first(client, world):
    html = client.get("/archive/news-letter").get_data(as_text=True)
    assert html.index("Second issue") < html.index("First issue")
    for absent in ("Not archived", "Other list", "Draft"):
        assert absent not in html
    assert 'type="application/atom+xml"' in html


def test_the_atom_feed_has_the_same_entries(client, world):
    response = client.get("/archive/news-letter/feed.atom")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    assert feed.find(f"{ATOM}title").text == "News"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["Second issue", "First issue"]
    link = entries[0].find(f"{ATOM}link").get("href")
    assert link.startswith("http") and "/archive/news-letter/" in link
    assert client.get(urlsplit(link).path).status_code == 200


def test_a_copy_is_the_message_for_a_placeholder_without_tracking_or_own_links(env, client, world):
    response = client.get(copy_url(env, "news-letter", world["first"]))
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == WEBVIEW_CSP
    html = response.get_data(as_text=True)
    assert "Hello [subscriber.first_name], news for News." in html
    assert 'href="https://shop.example.com/sale"' in html          # as written: no click token
    assert "/t/" not in html and "Unsubscribe" not in html and "Preferences" not in html
    assert "View in browser" not in html and "/p/" not in html
    assert "Ann" not in html


def pages_of(client, lang: str) -> str:
    return client.get("/archive/news-letter", headers={"Accept-Language": lang}).get_data(as_text=True)


def test_shared_caches_keep_a_copy_per_language_and_none_of_a_signed_in_page(env, client, world):
    """The archive's text (and a copy's lang) follows Accept-Language, so a shared cache is
    told to key on it; a signed-in reader's page carries their language and their menu, so it
    is theirs alone. The feed has no text of ours: one copy for everybody."""
    copy = copy_url(env, "news-letter", world["first"])       # (its <html lang> is the reader's)
    for path in ("/archive/news-letter", copy):
        pages = {lang: client.get(path, headers={"Accept-Language": lang}) for lang in ("en", "ru")}
        for response in pages.values():
            assert response.status_code == 200
            assert response.headers["Cache-Control"] == "public, max-age=300"
            assert "accept-language" in {v.lower() for v in response.vary}, (path, response.vary)
    assert "Subscribe to this archive" in pages_of(client, "en")
    assert "Подписаться на ленту архива" in pages_of(client, "ru")
    feed = client.get("/archive/news-letter/feed.atom", headers={"Accept-Language": "ru"})
    assert feed.headers["Cache-Control"] == "public, max-age=300"
    assert "accept-language" not in {v.lower() for v in feed.vary}

    user = env.user("Viewer")
    env.login(client, user)
    for path in ("/archive/news-letter", copy):
        response = client.get(path)
        assert response.status_code == 200
        assert "public" not in response.headers["Cache-Control"]
        assert "private" in response.headers["Cache-Control"]
    assert user["email"] in client.get("/archive/news-letter").get_data(as_text=True)


@pytest.mark.parametrize("case", ["forged", "unknown slug", "other list's campaign",
                                  "not archived", "wrong version", "other list's slug"])
def test_forged_or_foreign_addresses_are_404(env, client, world, case):
    good = copy_url(env, "news-letter", world["first"])
    token = good.rsplit("/", 1)[1]
    url = {"forged": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
           "unknown slug": f"/archive/no-such-list/{token}",
           "other list's campaign": copy_url(env, "news-letter", world["elsewhere"]),
           "not archived": copy_url(env, "news-letter", world["hidden"]),
           "wrong version": "/archive/news-letter/" + webview.archive_token(env.settings, world["first"], 999),
           "other list's slug": f"/archive/News_Letter/{token}"}[case]
    assert client.get(url).status_code == 404


def test_an_unknown_archive_and_its_feed_are_404(client, world):
    assert client.get("/archive/nothing-here").status_code == 404
    assert client.get("/archive/nothing-here/feed.atom").status_code == 404


def test_withdrawing_a_campaign_or_the_archive_takes_it_down(env, client_module, token, world):
    url = copy_url(env, "news-letter", world["second"])
    assert api(client_module, token, "PATCH", f"/campaigns/{world['second']}",
               {"archive": False}).get_json()["archive"] is False
    assert client_module.get(url).status_code == 404
    assert "Second issue" not in client_module.get("/archive/news-letter").get_data(as_text=True)
    api(client_module, token, "PATCH", f"/campaigns/{world['second']}", {"archive": True})
    assert client_module.get(url).status_code == 200
    assert api(client_module, token, "PATCH", f"/lists/{world['news']}",
               {"archive_slug": None}).get_json()["archive_slug"] is None
    assert client_module.get("/archive/news-letter").status_code == 404
    assert client_module.get(url).status_code == 404
    api(client_module, token, "PATCH", f"/lists/{world['news']}", {"archive_slug": "news-letter"})
    assert client_module.get(url).status_code == 200


def test_a_finished_campaign_changes_nothing_but_its_archive_flag(client_module, token, world):
    response = api(client_module, token, "PATCH", f"/campaigns/{world['first']}", {"name": "Renamed"})
    assert response.status_code == 409


@pytest.mark.parametrize("slug, status", [("bad slug", 422), ("-dash", 422), ("x" * 65, 422),
                                          ("news-letter", 409)])
def test_bad_or_taken_archive_addresses_are_refused(client_module, token, world, slug, status):
    response = api(client_module, token, "PATCH", f"/lists/{world['other']}", {"archive_slug": slug})
    assert response.status_code == status
    assert response.get_json()["errors"][0]["field"].endswith("archive_slug")


def test_created_through_the_api_with_archive(env, client_module, token, world):
    message_id = make_message(env, html=ISSUE_HTML)
    response = api(client_module, token, "POST", "/campaigns", {
        "name": "Via API", "message_id": message_id, "lists": [world["news"]],
        "from_email": "news@example.com", "archive": True})
    assert response.status_code == 201
    found = api(client_module, token, "GET", f"/campaigns/{response.get_json()['id']}").get_json()
    assert found["archive"] is True


def test_the_campaign_and_list_pages_switch_the_archive(env, client, world):
    env.login(client, env.user("Administrator"))
    page = client.get(f"/campaigns/{world['first']}").get_data(as_text=True)
    assert 'id="archive-toggle"' in page and "/archive/news-letter" in page
    client.post(f"/campaigns/{world['first']}/archive", data={"csrf_token": csrf_token(page)})
    with db.read(env.engine) as conn:
        assert campaigns.get_campaign(conn, world["first"])["archive"] is False
    client.post(f"/campaigns/{world['first']}/archive",
                data={"csrf_token": csrf_token(page), "archive": "on"})
    with db.read(env.engine) as conn:
        assert campaigns.get_campaign(conn, world["first"])["archive"] is True
    page = client.get(f"/audience/lists/{world['other']}").get_data(as_text=True)
    assert 'id="archive-slug"' in page and 'value="other"' in page      # suggested from the name
    client.post(f"/audience/lists/{world['other']}/edit", data={
        "csrf_token": csrf_token(page), "name": "Other", "optin": "single", "visibility": "private",
        "archive_on": "on", "archive_slug": "other"})
    assert "Other list" in client.get("/archive/other").get_data(as_text=True)
    client.post(f"/audience/lists/{world['other']}/edit", data={
        "csrf_token": csrf_token(page), "name": "Other", "optin": "single", "visibility": "private",
        "archive_slug": "other"})
    assert client.get("/archive/other").status_code == 404


def test_a_role_limited_to_lists_switches_only_its_own_campaigns(env, client, world):
    """The switch keeps to a list-scoped role's lists like the campaign's other pages: its
    own campaign switches, one that also went to a list outside the scope is 404 and stays."""
    with db.write(env.engine) as conn:
        role_id = access.create_role(conn, ACTOR, "News team", ["campaigns:read", "campaigns:write"],
                                     lists=[world["news"]])
        access.create_user(conn, ACTOR, "news-team@example.com", PASSWORD, role_id)
    env.login(client, {"email": "news-team@example.com", "password": PASSWORD})
    page = client.get(f"/campaigns/{world['first']}")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    own = client.post(f"/campaigns/{world['first']}/archive", data={"csrf_token": token})
    assert own.status_code == 302
    foreign = client.post(f"/campaigns/{world['second']}/archive", data={"csrf_token": token})
    assert foreign.status_code == 404
    with db.read(env.engine) as conn:
        assert campaigns.get_campaign(conn, world["first"])["archive"] is False
        assert campaigns.get_campaign(conn, world["second"])["archive"] is True
    client.post(f"/campaigns/{world['first']}/archive", data={"csrf_token": token, "archive": "on"})
    with db.read(env.engine) as conn:
        assert campaigns.get_campaign(conn, world["first"])["archive"] is True


def test_an_archived_campaign_still_running_is_not_listed(env, client, world):
    """Running, with the version it sends pinned (as a started campaign has): only its state
    keeps it out — finished, the same campaign is listed."""
    with db.write(env.engine) as conn:
        message_id = campaigns.get_campaign(conn, world["draft"])["message_id"]
        version_id = get_version(conn, message_id)["id"]
        conn.execute(update(campaigns_table).where(campaigns_table.c.id == world["draft"])
                     .values(state="running", version_id=version_id))
    assert "Draft" not in client.get("/archive/news-letter").get_data(as_text=True)
    with db.write(env.engine) as conn:
        conn.execute(update(campaigns_table).where(campaigns_table.c.id == world["draft"])
                     .values(state="finished", finished_at=db.types.utcnow()))
    assert "Draft" in client.get("/archive/news-letter").get_data(as_text=True)
