"""Double opt-in through a real SMTP server (aiosmtpd on 127.0.0.1), following the link;
unsubscribe pages and the RFC 8058 one-click POST without cookies or CSRF token."""
from __future__ import annotations

import re
import uuid

import pytest

from altkraft_onprem import db, tasks
from altkraft_onprem.app import create_app
from altkraft_onprem.audience import links, lists, service, subscribers
from tests.conftest import Env, fresh_database, make_settings
from tests.smtp_sink import SmtpSink

from .conftest import ACTOR


@pytest.fixture(scope="module")
def sink():
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, sink):
    """The module's app, sending through the sink."""
    data_dir = tmp_path_factory.mktemp("optin")
    url, drop = fresh_database(template_db, data_dir)
    settings = make_settings(data_dir, url, **{"smtp.relays": [sink.relay()],
                                               "audience.from_email": "news@example.com"})
    engine = db.build_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    yield Env(settings, engine, app, data_dir, url)
    engine.dispose()
    drop()


def make_list(env, optin="double", visibility="public") -> int:
    with db.write(env.engine) as conn:
        return lists.create_list(conn, ACTOR, "Weekly " + uuid.uuid4().hex[:6], optin=optin,
                                 visibility=visibility)


def status_of(env, email, list_id):
    with db.read(env.engine) as conn:
        person = subscribers.find_by_email(conn, email)
    return next((m["status"] for m in person["lists"] if m["list_id"] == list_id), None), person


def test_double_optin_round_trip(env, sink, client):
    list_id = make_list(env)
    email = f"eve-{uuid.uuid4().hex[:6]}@example.com"
    page = client.get(f"/p/subscribe/{list_id}")
    assert page.status_code == 200 and b'name="website"' in page.data
    response = client.post(f"/p/subscribe/{list_id}", data={"email": email, "first_name": "Eve"},
                           environ_base={"REMOTE_ADDR": "198.51.100.4"},
                           headers={"User-Agent": "FormBrowser/1.0"})
    assert response.status_code == 200, response.data[:300]
    assert "set-cookie" not in {k.lower() for k in response.headers.keys()}
    status, person = status_of(env, email, list_id)
    assert status == "unconfirmed"
    with db.read(env.engine) as conn:
        assert not service.is_sendable(conn, person["id"], [list_id])
    [message] = sink.by_recipient(email)
    assert message["From"].endswith("<news@example.com>") or "news@example.com" in message["From"]
    text = message.get_body(("plain",)).get_content()
    link = re.search(r"http://\S+/p/confirm/\S+", text).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    landing = client.get("/" + path)
    assert landing.status_code == 200 and b"confirm-form" in landing.data
    status, _ = status_of(env, email, list_id)
    assert status == "unconfirmed"          # a link scanner's GET confirms nothing
    done = client.post("/" + path, headers={"User-Agent": "ClickBrowser/2.0"},
                       environ_base={"REMOTE_ADDR": "198.51.100.9"})
    assert done.status_code == 200 and b"confirmed" in done.data
    status, person = status_of(env, email, list_id)
    assert status == "confirmed"
    with db.read(env.engine) as conn:
        assert service.is_sendable(conn, person["id"], [list_id])
        from altkraft_onprem.audience.activity import consent_record
        kinds = {(c["kind"], c["ip"], c["user_agent"]) for c in consent_record(conn, person["id"])}
    assert ("subscribe", "198.51.100.4", "FormBrowser/1.0") in kinds
    assert ("confirm", "198.51.100.9", "ClickBrowser/2.0") in kinds


def test_honeypot_stores_nothing(env, sink, client):
    list_id = make_list(env)
    email = f"bot-{uuid.uuid4().hex[:6]}@example.com"
    response = client.post(f"/p/subscribe/{list_id}", data={"email": email, "website": "http://spam"})
    assert response.status_code == 200
    with db.read(env.engine) as conn:
        assert subscribers.find_by_email(conn, email) is None
    assert sink.by_recipient(email) == []


def test_single_optin_confirms_at_once_and_private_lists_have_no_form(env, client):
    list_id = make_list(env, optin="single")
    email = f"sol-{uuid.uuid4().hex[:6]}@example.com"
    client.post(f"/p/subscribe/{list_id}", data={"email": email})
    assert status_of(env, email, list_id)[0] == "confirmed"
    assert client.get(f"/p/subscribe/{make_list(env, visibility='private')}").status_code == 404


def test_bad_email_on_the_form_is_shown(env, client):
    response = client.post(f"/p/subscribe/{make_list(env)}", data={"email": "nope@"})
    assert response.status_code == 422 and b"flash error" in response.data


def test_tampered_or_expired_confirm_link(env, client):
    assert client.get("/p/confirm/abc.def").status_code == 400
    token = links.confirm_url(env.settings, 1, 1).rsplit("/", 1)[1]
    short = env.settings.replace(**{"audience.confirm_hours": 1})
    import time
    from unittest import mock
    with mock.patch("time.time", return_value=time.time() + 7200):
        with pytest.raises(links.LinkError) as caught:
            links.read_confirm(short, token)
    assert caught.value.expired


def test_resend_confirmation(env, sink):
    from altkraft_onprem.audience import optin
    from altkraft_onprem.audience.jobs import send_confirmation
    list_id = make_list(env)
    email = f"re-{uuid.uuid4().hex[:6]}@example.com"
    with db.write(env.engine) as conn:
        sid = subscribers.create_subscriber(conn, ACTOR, {"email": email}, list_ids=[list_id],
                                            status="unconfirmed")
        optin.resend(conn, ACTOR, sid, list_id)
    send_confirmation(sid, list_id)
    assert len(sink.by_recipient(email)) == 1


def one_click_env(env):
    list_a, list_b = make_list(env, optin="single"), make_list(env, optin="single")
    email = f"oc-{uuid.uuid4().hex[:6]}@example.com"
    with db.write(env.engine) as conn:
        sid = subscribers.create_subscriber(conn, ACTOR, {"email": email}, list_ids=[list_a, list_b])
    return sid, list_a, list_b, email


def test_one_click_unsubscribe_without_cookies_or_csrf(env):
    sid, list_a, list_b, email = one_click_env(env)
    url = links.unsubscribe_url(env.settings, sid, list_a, campaign_id=7)
    fresh = env.app.test_client(use_cookies=False)
    response = fresh.post("/" + url.split("/", 3)[3], data="List-Unsubscribe=One-Click",
                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert "set-cookie" not in {k.lower() for k in response.headers.keys()}
    assert status_of(env, email, list_a)[0] == "unsubscribed"
    assert status_of(env, email, list_b)[0] == "confirmed"
    with db.read(env.engine) as conn:
        assert not service.is_sendable(conn, sid, [list_a])
        assert service.is_sendable(conn, sid, [list_b])


def test_unsubscribe_from_everything_suppresses(env, client):
    sid, list_a, list_b, email = one_click_env(env)
    path = "/" + links.unsubscribe_url(env.settings, sid, list_a).split("/", 3)[3]
    assert client.get(path).status_code == 200
    assert client.post(path, data={"scope": "all"}).status_code == 200
    assert status_of(env, email, list_b)[0] == "unsubscribed"
    with db.read(env.engine) as conn:
        from altkraft_onprem.audience.suppression import is_suppressed
        assert is_suppressed(conn, email)


def test_tampered_unsubscribe_link_is_404(env, client):
    sid, list_a, _, _ = one_click_env(env)
    path = "/" + links.unsubscribe_url(env.settings, sid, list_a).split("/", 3)[3]
    assert client.post(path[:-2] + "xx", data="List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded").status_code == 404


def test_preference_center(env, client):
    sid, list_a, list_b, email = one_click_env(env)
    path = "/" + links.preferences_url(env.settings, sid).split("/", 3)[3]
    page = client.get(path)
    assert page.status_code == 200 and email.encode() in page.data
    client.post(path, data={"list": [str(list_b)]})
    assert status_of(env, email, list_a)[0] == "unsubscribed"
    assert status_of(env, email, list_b)[0] == "confirmed"


def test_resend_over_the_api(env, sink):
    from tests.api.conftest import Api
    api = Api(env.app.test_client(), env.token("Editor"))
    list_id = make_list(env)
    email = f"api-re-{uuid.uuid4().hex[:6]}@example.com"
    with db.write(env.engine) as conn:
        sid = subscribers.create_subscriber(conn, ACTOR, {"email": email}, list_ids=[list_id],
                                            status="unconfirmed")
    assert api("POST", f"/subscribers/{sid}/resend-confirmation", json={"list": list_id}
               ).status_code == 202
    assert len(sink.by_recipient(email)) == 1
    confirmed = make_list(env, optin="single")
    with db.write(env.engine) as conn:
        subscribers.change_memberships(conn, ACTOR, sid, add=[confirmed])
    refused = api("POST", f"/subscribers/{sid}/resend-confirmation", json={"list": confirmed})
    assert refused.status_code == 409          # a valid request; the membership is confirmed


def test_unsubscribed_from_everything_may_opt_in_again_only_by_confirming(env, sink, client):
    from altkraft_onprem.audience.suppression import is_suppressed
    sid, list_a, _, email = one_click_env(env)
    with db.write(env.engine) as conn:
        service.unsubscribe(conn, sid, None)
    single = make_list(env, optin="single")
    client.post(f"/p/subscribe/{single}", data={"email": email})
    assert status_of(env, email, single)[0] is None            # typed address: not enough
    double = make_list(env, optin="double")
    client.post(f"/p/subscribe/{double}", data={"email": email})
    assert status_of(env, email, double)[0] == "unconfirmed"
    with db.read(env.engine) as conn:
        assert is_suppressed(conn, email)
    [message] = sink.by_recipient(email)
    link = re.search(r"http://\S+/p/confirm/\S+", message.get_body(("plain",)).get_content()).group(0)
    client.post("/" + link.split("/", 3)[3])
    with db.read(env.engine) as conn:
        assert not is_suppressed(conn, email)
        assert service.is_sendable(conn, sid, [double])
        assert not service.is_sendable(conn, sid, [list_a])


def test_no_second_confirmation_within_minutes(env, sink, client):
    list_id = make_list(env)
    email = f"twice-{uuid.uuid4().hex[:6]}@example.com"
    for _ in range(2):
        client.post(f"/p/subscribe/{list_id}", data={"email": email},
                    environ_base={"REMOTE_ADDR": "198.51.100.77"})
    assert len(sink.by_recipient(email)) == 1


def test_sign_ups_per_address_are_limited(env, client):
    list_id = make_list(env, optin="single")
    limit = env.settings["audience.form_signups_per_hour"]
    codes = [client.post(f"/p/subscribe/{list_id}",
                         data={"email": f"flood{i}-{uuid.uuid4().hex[:4]}@example.com"},
                         environ_base={"REMOTE_ADDR": "203.0.113.200"}).status_code
             for i in range(limit + 1)]
    assert codes[:limit] == [200] * limit and codes[-1] == 429
