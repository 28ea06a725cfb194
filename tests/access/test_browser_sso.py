"""Single sign-on in real Chromium: the real service (`altkraft run`) with [oidc] pointing at a
real OpenID provider on 127.0.0.1 (oidc-provider-mock); the person clicks "Sign in with single
sign-on", picks their identity on the provider's page, and lands signed in where they wanted."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.access.models import system_actor
from tests.access.test_sso import DOMAIN, provider  # noqa: F401  (the provider fixture)
from tests.conftest import start_service

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def sso_service(env, provider):  # noqa: F811
    secret = env.data_dir / "oidc_client_secret"
    secret.write_text("client-secret")
    secret.chmod(0o600)
    server = start_service(env, extra_env={
        "ALTKRAFT_OIDC__ISSUER": provider, "ALTKRAFT_OIDC__CLIENT_ID": "altkraft",
        "ALTKRAFT_OIDC__CLIENT_SECRET_FILE": str(secret),
        "ALTKRAFT_OIDC__ALLOWED_DOMAINS": json.dumps([DOMAIN])})
    yield server
    server.stop()


def test_sign_in_through_the_provider(env, sso_service, page):
    with db.write(env.engine) as conn:
        access.create_user(conn, system_actor(), f"alice@{DOMAIN}", "a long password 1",
                           access.role_id_by_name(conn, "Editor"))
    page.goto(sso_service.url + "/campaigns")
    page.wait_for_url("**/login?next=/campaigns")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.wait_for_url("http://127.0.0.1:*/oauth2/authorize?**")
    page.get_by_placeholder("sub").fill("alice")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(sso_service.url + "/campaigns")
    expect(page.get_by_text(f"alice@{DOMAIN}").first).to_be_visible()
