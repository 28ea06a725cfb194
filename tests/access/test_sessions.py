"""Login, logout, CSRF, throttling, sessions ending on password change, first-run setup."""
from altkraft_onprem import db
from altkraft_onprem.access import service as access
from altkraft_onprem.app import create_app
from altkraft_onprem.config.declared import BY_KEY, LOGIN_FAILURES_PER_IP_FACTOR
from tests.conftest import PASSWORD, csrf_token


def test_login_then_dashboard(env, client):
    user = env.user("Viewer")
    env.login(client, user)
    page = client.get("/")
    assert page.status_code == 200
    assert user["email"] in page.get_data(as_text=True)


def test_anonymous_page_redirects_to_login_with_next(client):
    response = client.get("/profile")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/profile")


def test_session_cookie_flags(env, client):
    user = env.user("Viewer")
    env.login(client, user)
    cookie = client.get_cookie("altkraft_session")
    assert cookie.http_only and cookie.same_site == "Lax"
    assert not cookie.secure  # public_url is http here


def test_form_post_without_csrf_token_is_refused(env, client):
    user = env.user("Administrator")
    env.login(client, user)
    response = client.post("/users", data={"email": "x@example.com", "password": PASSWORD, "role_id": "1"})
    assert response.status_code == 400
    with db.read(env.engine) as conn:
        assert all(u["email"] != "x@example.com" for u in access.list_users(conn))


def test_login_post_without_csrf_token_is_refused(env, client):
    user = env.user("Viewer")
    response = client.post("/login", data={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 400


def test_password_change_ends_other_sessions(env):
    user = env.user("Editor")
    first, second = env.app.test_client(), env.app.test_client()
    env.login(first, user)
    env.login(second, user)
    page = first.get("/profile").get_data(as_text=True)
    response = first.post("/profile", data={
        "action": "password", "current": PASSWORD, "password": "a brand new secret",
        "password2": "a brand new secret", "csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert second.get("/").status_code == 302          # back to the login page
    assert first.get("/").status_code == 302


def test_logout_kills_the_server_side_session(env, client):
    user = env.user("Viewer")
    env.login(client, user)
    stolen = client.get_cookie("altkraft_session").value
    page = client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(page)})
    thief = env.app.test_client()
    thief.set_cookie("altkraft_session", stolen)
    assert thief.get("/").status_code == 302


def test_login_throttled_after_repeated_failures(env, client):
    user = env.user("Viewer")
    token = csrf_token(client.get("/login").get_data(as_text=True))
    for _ in range(env.settings["security.login_max_failures"]):
        bad = client.post("/login", data={"email": user["email"], "password": "wrong password!",
                                          "csrf_token": token})
        assert bad.status_code == 403
    good = client.post("/login", data={"email": user["email"], "password": PASSWORD, "csrf_token": token})
    assert good.status_code == 429


def _failures_from(app, ip: str, failures: int):
    """`failures` failed logins from one IP, each for another address; then a client there."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    token = csrf_token(client.get("/login").get_data(as_text=True))
    for n in range(failures):
        bad = client.post("/login", data={"email": f"guess{n}@{ip}.example", "password": "wrong password!",
                                          "csrf_token": token})
        assert bad.status_code == 403
    return client, token


def test_one_ip_may_fail_the_factor_the_help_names_times_as_often(env):
    assert f"one IP address may fail {LOGIN_FAILURES_PER_IP_FACTOR} times as many" in \
        BY_KEY["security.login_max_failures"].help
    # One failure per address: the IP's limit is the factor itself (every failure hashes).
    app = create_app(env.settings.replace(security__login_max_failures=1), engine=env.engine)
    limit = LOGIN_FAILURES_PER_IP_FACTOR
    user = env.user("Viewer")
    below, token = _failures_from(app, "198.51.100.7", limit - 1)
    assert below.post("/login", data={"email": user["email"], "password": PASSWORD,
                                      "csrf_token": token}).status_code == 302
    at_limit, token = _failures_from(app, "198.51.100.8", limit)
    assert at_limit.post("/login", data={"email": user["email"], "password": PASSWORD,
                                         "csrf_token": token}).status_code == 429


def test_next_parameter_is_not_an_open_redirect(env, client):
    user = env.user("Viewer")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        token = csrf_token(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"email": user["email"], "password": PASSWORD,
                                               "csrf_token": token, "next": target})
        assert response.headers["Location"] == "/"


def test_first_run_setup_creates_administrator_once(template_db, tmp_path):
    from altkraft_onprem.app import create_app
    from tests.conftest import fresh_database, make_settings

    url, drop = fresh_database(template_db, tmp_path)
    settings = make_settings(tmp_path, url)
    engine = db.build_engine(settings.database_url)
    try:
        app = create_app(settings, engine=engine)
        client = app.test_client()
        with db.write(engine) as conn:
            secret = access.issue_setup_token(conn)
        assert client.get("/setup/not-the-token").status_code == 404
        page = client.get(f"/setup/{secret}").get_data(as_text=True)
        response = client.post(f"/setup/{secret}", data={
            "email": "Boss@Example.com", "password": PASSWORD, "password2": PASSWORD, "name": "Boss",
            "csrf_token": csrf_token(page)})
        assert response.status_code == 302
        assert client.get("/users").status_code == 200
        assert app.test_client().get(f"/setup/{secret}").status_code == 404   # used up
        with db.read(engine) as conn:
            [admin] = access.list_users(conn)
        assert admin["email"] == "boss@example.com" and admin["role"] == "Administrator"
    finally:
        engine.dispose()
        drop()
