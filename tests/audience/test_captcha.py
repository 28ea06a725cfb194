"""The robot check and the address checks of the public subscription form (issue 20): the
proof of work is solved here with the `altcha` library as the widget would; MX answers come
from a real DNS server on 127.0.0.1 (dnslib); a provider's siteverify is a small HTTP server on
127.0.0.1."""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import altcha
import pytest

from altkraft_onprem import db, tasks
from altkraft_onprem.access.models import app_state
from altkraft_onprem.app import create_app
from altkraft_onprem.audience import captcha, subscribers
from tests.conftest import Env, fresh_database, make_settings
from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)

from .test_optin import make_list

ZONE = {
    "example.com": {"MX": [(10, "mx.example.com")]},
    "bare.example.net": {"A": ["192.0.2.7"]},          # no MX: its address takes mail
    "nomail.example.net": {"TXT": ["v=spf1 -all"]},    # exists, no MX and no address
    "nullmx.example.net": {"MX": [(0, ".")]},          # RFC 7505: accepts no mail
    "mailinator.com": {"MX": [(10, "mail.mailinator.com")]},
}


def _app(settings, engine):
    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, dns_server):  # noqa: F811
    data_dir = tmp_path_factory.mktemp("data")
    url, drop = fresh_database(template_db, data_dir)
    settings = make_settings(data_dir, url, **{
        "public.captcha": "pow", "public.check_mx": True, "public.captcha_max_number": 40,
        "deliverability.nameservers": [dns_server.address]})
    engine = db.build_engine(settings.database_url)
    app = _app(settings, engine)
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    dns_server.serve(ZONE)
    yield Env(settings, engine, app, data_dir, url)
    engine.dispose()
    drop()


def solve(client) -> str:
    """What the widget puts in the form: the challenge from /p/captcha, solved."""
    response = client.get("/p/captcha")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    challenge = altcha.Challenge.from_dict(response.get_json())
    solution = altcha.solve_challenge(challenge, timeout=30)
    assert solution is not None
    return altcha.Payload(challenge, solution).to_base64()


def post(client, list_id, email, ip, **extra):
    return client.post(f"/p/subscribe/{list_id}", data={"email": email, **extra},
                       environ_base={"REMOTE_ADDR": ip})


def person(env, email):
    with db.read(env.engine) as conn:
        return subscribers.find_by_email(conn, email)


def new_email(domain="example.com"):
    return f"pow-{uuid.uuid4().hex[:8]}@{domain}"


def test_a_solved_challenge_is_accepted_once(env, client):
    list_id = make_list(env, optin="single")
    payload = solve(client)
    first, second = new_email(), new_email()
    response = post(client, list_id, first, "198.51.100.31", altcha=payload)
    assert response.status_code == 200, response.get_data(as_text=True).split("role=\"alert\">")[-1][:300]
    assert person(env, first)["lists"][0]["status"] == "confirmed"
    again = post(client, list_id, second, "198.51.100.31", altcha=payload)
    assert again.status_code == 422
    assert "robot check was not accepted" in again.get_data(as_text=True)
    assert person(env, second) is None
    # the refused form keeps what was typed and offers a new challenge
    assert second in again.get_data(as_text=True) and "<altcha-widget" in again.get_data(as_text=True)


def test_a_missing_solution_is_refused_with_what_to_do(env, client):
    list_id = make_list(env)
    email = new_email()
    response = post(client, list_id, email, "198.51.100.32")
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and "complete the robot check" in text
    assert "turn on JavaScript" in text           # the noscript message
    assert person(env, email) is None


def test_forged_and_tampered_solutions_are_refused(env, client):
    list_id = make_list(env)
    # signed with another key
    forged = altcha.create_challenge(algorithm=captcha.ALGORITHM, cost=captcha.COST, counter=3,
                                     hmac_secret="not our key",
                                     expires_at=int(time.time()) + 300)
    payload = altcha.Payload(forged, altcha.solve_challenge(forged)).to_base64()
    # ours, with a made-up derived key (the proof of the work)
    data = json.loads(base64.b64decode(solve(client)))
    data["solution"]["derivedKey"] = data["challenge"]["parameters"]["keyPrefix"] + "0" * 32
    tampered = base64.b64encode(json.dumps(data).encode()).decode()
    for bad in (payload, tampered, "bm90IGpzb24=", "%%%"):
        email = new_email()
        response = post(client, list_id, email, "198.51.100.33", altcha=bad)
        assert response.status_code == 422, bad
        assert "robot check was not accepted" in response.get_data(as_text=True)
        assert person(env, email) is None


def test_an_expired_challenge_is_refused(env, client):
    list_id = make_list(env)
    key = env.app.config["SECRET_KEY"]
    old = altcha.create_challenge(
        algorithm=captcha.ALGORITHM, cost=captcha.COST, counter=5,
        expires_at=int(time.time()) - 1, hmac_secret=captcha._key(key, b"challenge"),
        hmac_key_secret=captcha._key(key, b"key"))
    payload = altcha.Payload(old, altcha.solve_challenge(old)).to_base64()
    email = new_email()
    response = post(client, list_id, email, "198.51.100.34", altcha=payload)
    assert response.status_code == 422 and "has expired" in response.get_data(as_text=True)
    assert person(env, email) is None


def test_used_challenges_are_forgotten_once_expired(env):
    with db.write(env.engine) as conn:
        assert captcha.claim_state(conn, "captcha:old", "000000000001")
        assert captcha.claim_state(conn, "captcha:new", "999999999999")
        assert not captcha.claim_state(conn, "captcha:new", "999999999999")
        captcha.drop_states_below(conn, "captcha:", "000000000002")
        keys = {r.key for r in conn.execute(app_state.select().where(
            app_state.c.key.startswith("captcha:")))}
        assert "captcha:old" not in keys and "captcha:new" in keys
        conn.execute(app_state.delete().where(app_state.c.key.in_(["captcha:new"])))


def test_a_disposable_domain_is_refused_by_name(env, client):
    list_id = make_list(env)
    email = new_email("mailinator.com")
    response = post(client, list_id, email, "198.51.100.35", altcha=solve(client))
    assert response.status_code == 422
    assert "mailinator.com are disposable" in response.get_data(as_text=True)
    assert person(env, email) is None
    assert captcha.is_disposable("eu.mailinator.com") and not captcha.is_disposable("example.com")


@pytest.mark.parametrize("domain, accepted", [
    ("example.com", True), ("bare.example.net", True), ("nomail.example.net", False),
    ("nullmx.example.net", False), ("no-such-domain.example.net", False)])
def test_a_domain_that_receives_no_email_is_refused(env, client, domain, accepted):
    list_id = make_list(env, optin="single")
    email = new_email(domain)
    response = post(client, list_id, email, "198.51.100.36", altcha=solve(client))
    if accepted:
        assert response.status_code == 200, response.get_data(as_text=True).split("role=\"alert\">")[-1][:300]
        assert person(env, email) is not None
    else:
        assert response.status_code == 422
        assert f"{domain} does not receive email" in response.get_data(as_text=True)
        assert person(env, email) is None


def test_a_dns_server_that_does_not_answer_accepts_the_sign_up(env):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        settings = env.settings.replace(
            deliverability__nameservers=[f"127.0.0.1:{silent.getsockname()[1]}"])
        client = _app(settings, env.engine).test_client()
        list_id = make_list(env, optin="single")
        email = new_email("nomail.example.net")
        started = time.monotonic()
        response = post(client, list_id, email, "198.51.100.37", altcha=solve(client))
        assert response.status_code == 200, response.get_data(as_text=True).split("role=\"alert\">")[-1][:300]
        assert time.monotonic() - started < captcha.MX_TIMEOUT + 5
        assert person(env, email) is not None
    finally:
        silent.close()


def test_off_needs_no_solution_and_serves_no_challenge(env):
    client = _app(env.settings.replace(public__captcha="off"), env.engine).test_client()
    list_id = make_list(env, optin="single")
    page = client.get(f"/p/subscribe/{list_id}").get_data(as_text=True)
    assert "altcha" not in page and "turn on JavaScript" not in page
    assert client.get("/p/captcha").status_code == 404
    email = new_email()
    assert post(client, list_id, email, "198.51.100.38").status_code == 200
    assert person(env, email) is not None


class Siteverify:
    """A stand-in for a provider's siteverify endpoint: answers `answer` (JSON) and keeps what
    it was sent."""

    def __init__(self, answer: dict):
        self.answer, self.received = answer, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append(self.rfile.read(length).decode())
                body = json.dumps(outer.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/siteverify"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def provider_client(env, kind, url):
    secret = env.data_dir / "captcha_secret"
    secret.write_text("s3cret\n")
    settings = env.settings.replace(
        public__captcha=kind, public__captcha_site_key="site-key",
        public__captcha_secret_file=str(secret), public__captcha_verify_url=url,
        public__captcha_allowed_networks=["127.0.0.0/8"])
    return _app(settings, env.engine).test_client()


@pytest.mark.parametrize("kind, field, good", [
    ("hcaptcha", "h-captcha-response", {"success": True}),
    ("turnstile", "cf-turnstile-response", {"success": True}),
    ("smartcaptcha", "smart-token", {"status": "ok"})])
def test_a_provider_token_is_checked_at_its_siteverify(env, kind, field, good):
    verify = Siteverify(good)
    try:
        client = provider_client(env, kind, verify.url)
        list_id = make_list(env, optin="single")
        page = client.get(f"/p/subscribe/{list_id}")
        assert captcha.PROVIDERS[kind].script in page.get_data(as_text=True)
        assert captcha.PROVIDERS[kind].origins[0] in page.headers["Content-Security-Policy"]
        email = new_email()
        assert post(client, list_id, email, "198.51.100.39", **{field: "tok-1"}).status_code == 200
        assert "secret=s3cret" in verify.received[-1] and "tok-1" in verify.received[-1]
        verify.answer = {"success": False, "status": "failed", "error-codes": ["invalid-input-response"]}
        refused = post(client, list_id, new_email(), "198.51.100.39", **{field: "tok-2"})
        assert refused.status_code == 422
        assert "robot check was not accepted" in refused.get_data(as_text=True)
        missing = post(client, list_id, new_email(), "198.51.100.39")
        assert missing.status_code == 422 and len(verify.received) == 2
    finally:
        verify.stop()


def test_an_unreachable_provider_refuses_the_sign_up_clearly(env):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    client = provider_client(env, "turnstile", f"http://127.0.0.1:{port}/siteverify")
    list_id = make_list(env, optin="single")
    email = new_email()
    response = post(client, list_id, email, "198.51.100.40", **{"cf-turnstile-response": "tok"})
    assert response.status_code == 422
    assert "could not be verified right now" in response.get_data(as_text=True)
    assert person(env, email) is None


def test_a_provider_on_a_private_address_is_refused_unless_allowed(env):
    verify = Siteverify({"success": True})
    try:
        provider_client(env, "hcaptcha", verify.url)             # writes the secret file
        strict = _app(env.settings.replace(
            public__captcha="hcaptcha", public__captcha_secret_file=str(env.data_dir / "captcha_secret"),
            public__captcha_verify_url=verify.url), env.engine).test_client()
        list_id = make_list(env, optin="single")
        response = post(strict, list_id, new_email(), "198.51.100.41", **{"h-captcha-response": "t"})
        assert response.status_code == 422 and verify.received == []
    finally:
        verify.stop()
