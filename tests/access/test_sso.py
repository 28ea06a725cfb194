"""Single sign-on with OpenID Connect against a real provider on 127.0.0.1: oidc-provider-mock
(an authlib-based OpenID provider) serving discovery, the authorization endpoint, the token
endpoint, JWKS and userinfo over HTTP. The test plays the browser: our app redirects to the
provider, the "person" picks an identity on the provider's page, the provider redirects back
with a code, and our app exchanges it over HTTP and checks the ID token (authlib)."""
from __future__ import annotations

import threading
import uuid
from urllib.parse import urlsplit

import oidc_provider_mock
import pytest
import requests
import werkzeug.serving
from oidc_provider_mock import User

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from altkraft_onprem.app import create_app
from tests.conftest import csrf_token, fresh_database, make_settings

DOMAIN = "corp.example"


@pytest.fixture(scope="module")
def provider():
    """A real OpenID provider on a free port of 127.0.0.1, in a thread of this process."""
    app = oidc_provider_mock.app(require_nonce=True, user_claims=[
        User(sub="alice", claims={"email": f"alice@{DOMAIN}", "email_verified": True, "name": "Alice"}),
        User(sub="newbie", claims={"email": f"newbie@{DOMAIN}", "email_verified": True, "name": "New Bie"}),
        User(sub="unverified", claims={"email": f"mallory@{DOMAIN}", "email_verified": False}),
        User(sub="outsider", claims={"email": "eve@elsewhere.example", "email_verified": True}),
        User(sub="typo", claims={"email": f"typo@{DOMAIN}", "email_verified": True}),
    ])
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def sso(template_db, tmp_path_factory, provider):
    """An app whose single sign-on points at the provider; `make(**settings)` gives another
    app over the same database with other oidc settings."""
    data_dir = tmp_path_factory.mktemp("sso")
    url, drop = fresh_database(template_db, data_dir)
    secret = data_dir / "oidc_client_secret"
    secret.write_text("client-secret\n")
    secret.chmod(0o600)
    base = make_settings(data_dir, url, oidc__issuer=provider, oidc__client_id="altkraft",
                         oidc__client_secret_file=str(secret), oidc__allowed_domains=[DOMAIN])
    engine = db.build_engine(base.database_url)

    def make(**overrides):
        app = create_app(base.replace(**overrides), engine=engine)
        app.config["TESTING"] = True
        return app

    yield make
    engine.dispose()
    drop()


def sign_in_at_provider(client, subject: str, next_url: str = "/campaigns"):
    """Our /login/sso -> the provider's page, where `subject` is picked -> back to our callback."""
    start = client.get(f"/login/sso?next={next_url}")
    assert start.status_code == 302, start.get_data(as_text=True)
    authorize = start.headers["Location"]
    assert authorize.startswith("http://127.0.0.1:") and "nonce=" in authorize
    page = requests.get(authorize, timeout=10)
    assert page.status_code == 200 and "Authorize" in page.text
    back = requests.post(authorize, data={"sub": subject}, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/login/sso/callback"
    return client.get(f"{callback.path}?{callback.query}")


def make_user(app, email: str, role: str = "Editor") -> int:
    with app.app_context(), db.write(db.get_engine()) as conn:
        return access.create_user(conn, system_actor(), email, "a long password 1",
                                  access.role_id_by_name(conn, role))


def test_an_existing_user_signs_in_through_the_provider(sso):
    app = sso()
    make_user(app, f"alice@{DOMAIN}")
    client = app.test_client()
    assert 'id="sso-link"' in client.get("/login").get_data(as_text=True)
    done = sign_in_at_provider(client, "alice")
    assert done.status_code == 302 and done.headers["Location"] == "/campaigns"
    page = client.get("/")
    assert page.status_code == 200 and f"alice@{DOMAIN}" in page.get_data(as_text=True)


def test_an_unknown_address_is_refused_unless_accounts_are_created(sso):
    client = sso().test_client()
    refused = sign_in_at_provider(client, "newbie")
    assert refused.status_code == 403 and "no account" in refused.get_data(as_text=True)
    assert client.get("/").status_code == 302

    creating = sso(oidc__create_users=True, oidc__default_role="Analyst").test_client()
    done = sign_in_at_provider(creating, "newbie")
    assert done.status_code == 302
    with creating.application.app_context(), db.read(db.get_engine()) as conn:
        user = access.get_user(conn, access.user_id_by_email(conn, f"newbie@{DOMAIN}"))
        entry = access.audit_entries(conn, action="user.create")[0]
    assert user["role"] == "Analyst" and user["name"] == "New Bie"
    assert entry["actor"].startswith("sso:http://127.0.0.1:")


def test_a_default_role_that_names_no_role_answers_404_and_creates_nobody(sso):
    # docs/admin.md says so: the name is looked up when an account is to be made.
    client = sso(oidc__create_users=True, oidc__default_role="Veiwer").test_client()
    refused = sign_in_at_provider(client, "typo")
    assert refused.status_code == 404
    page = refused.get_data(as_text=True)
    assert "Veiwer" in page and "Administrator" in page          # the unknown name, the known ones
    assert client.get("/").status_code == 302
    with client.application.app_context(), db.read(db.get_engine()) as conn:
        assert not [u for u in access.list_users(conn) if u["email"] == f"typo@{DOMAIN}"]


def test_an_unverified_address_or_another_domain_is_refused(sso):
    app = sso(oidc__create_users=True)
    unverified = sign_in_at_provider(app.test_client(), "unverified")
    assert unverified.status_code == 403 and "not verified" in unverified.get_data(as_text=True)
    outsider = sign_in_at_provider(app.test_client(), "outsider")
    assert outsider.status_code == 403 and "elsewhere.example" in outsider.get_data(as_text=True)


def test_a_forged_callback_signs_nobody_in(sso):
    client = sso().test_client()
    client.get("/login/sso")               # a real state waits in this browser's session
    forged = client.get(f"/login/sso/callback?code={uuid.uuid4().hex}&state=forged")
    assert forged.status_code == 403
    assert client.get("/").status_code == 302


def test_a_code_sent_to_another_browser_signs_nobody_in(sso):
    """The code and state a provider gave one browser are no good in another (no such state)."""
    client = sso().test_client()
    start = client.get("/login/sso")
    back = requests.post(start.headers["Location"], data={"sub": "alice"}, allow_redirects=False, timeout=10)
    other = sso().test_client()
    callback = urlsplit(back.headers["Location"])
    assert other.get(f"{callback.path}?{callback.query}").status_code == 403
    assert other.get("/").status_code == 302


def test_an_unreachable_provider_is_a_clear_page(sso):
    client = sso(oidc__issuer="http://127.0.0.1:9").test_client()
    page = client.get("/login/sso")
    assert page.status_code == 502 and "cannot be reached" in page.get_data(as_text=True)


def test_without_an_issuer_there_is_no_single_sign_on(sso):
    client = sso(oidc__issuer="").test_client()
    assert 'id="sso-link"' not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/sso").status_code == 404


def test_the_password_still_works_beside_it(sso):
    app = sso()
    make_user(app, f"pw@{DOMAIN}", "Viewer")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"email": f"pw@{DOMAIN}", "password": "a long password 1",
                                           "csrf_token": csrf_token(page)})
    assert response.status_code == 302
