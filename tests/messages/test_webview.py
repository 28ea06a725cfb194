"""The "view in browser" page: a campaign sent through a real SMTP sink, then /p/view/<token>
for a recipient shows what that recipient got (pinned version, their name, the same tracking
and unsubscribe links), and anything not signed by us is a 404."""
from __future__ import annotations

import re

import pytest

from altkraft_onprem import db
from altkraft_onprem.campaigns import service as campaigns
from altkraft_onprem.campaigns.jobs import run_campaign
from altkraft_onprem.messages import service as messages
from altkraft_onprem.messages.webview import read_view_token, view_url
from altkraft_onprem.tracking import tokens
from tests.campaigns.helpers import (
    ACTOR,
    make_campaign,
    make_list,
    make_message,
    sending_settings,
    start,
)

HTML = """<html><body>
<p>Hello {{ subscriber.first_name | default('friend') }}, version one</p>
<p><a href="https://shop.example.com/sale">Sale</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""
PEOPLE = [{"email": "ann@example.net", "first_name": "Ann"},
          {"email": "boris@example.net", "first_name": "Борис"}]
_HREF = re.compile(r'href="([^"]+)"')


@pytest.fixture(scope="module")
def sent(env, module_smtp_sink):
    settings, _ = sending_settings(env, module_smtp_sink)
    list_id, ids = make_list(env, "Webview list", PEOPLE)
    _, (outsider,) = make_list(env, "Not in the campaign", [{"email": "carl@example.net"}])
    message_id = make_message(env, html=HTML, subject="Hi {{ subscriber.first_name }}")
    campaign_id = make_campaign(env, message_id, [list_id])
    start(env, settings, campaign_id)
    run_campaign(settings, env.engine, campaign_id, processes=1)
    with db.write(env.engine) as conn:
        version_id = campaigns.get_campaign(conn, campaign_id)["version_id"]
        # Edited after the send: the web copy must still show what went out.
        messages.save_version(conn, ACTOR, message_id, html=HTML.replace("version one", "version two"))
    return {"campaign_id": campaign_id, "ids": ids, "outsider": outsider, "version_id": version_id,
            "sink": module_smtp_sink}


def _page(env, sent, index: int = 0):
    url = view_url(env.settings, sent["campaign_id"], sent["ids"][index], sent["version_id"])
    return env.app.test_client().get("/p/view/" + url.rsplit("/", 1)[1])


def _received_html(sent, email: str) -> str:
    (message,) = sent["sink"].by_recipient(email)
    return message.get_body(preferencelist=("html",)).get_content()


def test_page_shows_the_recipients_personalisation(env, sent):
    response = _page(env, sent, 1)
    assert response.status_code == 200
    assert "Hello Борис, version one" in response.get_data(as_text=True)


def test_page_shows_the_pinned_version_not_the_newest(env, sent):
    body = _page(env, sent).get_data(as_text=True)
    assert "version one" in body and "version two" not in body


def test_links_are_the_ones_in_the_recipients_email(env, sent):
    page_links = _HREF.findall(_page(env, sent).get_data(as_text=True))
    honeypot = tokens.click_url(env.settings, sent["campaign_id"], sent["ids"][0], sent["version_id"],
                                tokens.HONEYPOT_LINK)
    email_links = [link for link in _HREF.findall(_received_html(sent, "ann@example.net"))
                   if link != honeypot]           # the email's machine trap is not on the page
    assert page_links == email_links
    assert any("/t/c/" in link for link in page_links)
    assert any("/p/u/" in link for link in page_links)


def test_viewing_the_page_is_not_an_open(env, sent):
    body = _page(env, sent).get_data(as_text=True)
    assert "/t/i/" in _received_html(sent, "ann@example.net")
    assert "/t/i/" not in body and "/t/o/" not in body and "/t/r/" not in body
    honeypot = tokens.click_url(env.settings, sent["campaign_id"], sent["ids"][0], sent["version_id"],
                                tokens.HONEYPOT_LINK)
    assert honeypot not in body


def test_page_runs_nothing_in_the_app_origin_and_sets_no_cookie(env, sent):
    response = _page(env, sent)
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "allow-scripts" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response.headers


def test_tampered_token_is_404(env, sent):
    url = view_url(env.settings, sent["campaign_id"], sent["ids"][0], sent["version_id"])
    token = url.rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert env.app.test_client().get(f"/p/view/{tampered}").status_code == 404
    assert env.app.test_client().get("/p/view/not-a-token").status_code == 404
    assert env.app.test_client().get("/p/view/" + "x" * 500).status_code == 404


def test_token_signed_for_someone_else_is_not_the_view_of_a_recipient(env, sent):
    client = env.app.test_client()
    outsider = view_url(env.settings, sent["campaign_id"], sent["outsider"], sent["version_id"])
    other_version = view_url(env.settings, sent["campaign_id"], sent["ids"][0], sent["version_id"] + 1)
    for url in (outsider, other_version):
        assert client.get("/p/view/" + url.rsplit("/", 1)[1]).status_code == 404


def test_unsubscribe_token_is_not_a_view_token(env, sent):
    from altkraft_onprem.audience.links import LinkError, unsubscribe_token

    with pytest.raises(LinkError):
        read_view_token(env.settings, unsubscribe_token(env.settings, sent["ids"][0], None,
                                                        sent["campaign_id"]))


def test_page_never_redirects(env, sent):
    response = _page(env, sent)
    assert response.status_code == 200 and "Location" not in response.headers


def test_the_preview_link_explains_itself(env):
    from altkraft_onprem.messages.preview import _links

    url = _links(env.settings, 0)["view_in_browser_url"]
    response = env.app.test_client().get("/p/view/" + url.rsplit("/", 1)[1])
    assert response.status_code == 200
    assert "test sends have no web copy" in response.get_data(as_text=True)
    assert "Set-Cookie" not in response.headers
