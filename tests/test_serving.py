"""`altkraft run` as a real service: health, readiness, metrics, migrations gate, hardening."""
from __future__ import annotations

import time
import uuid

import pytest
import requests

from altkraft_onprem import db, tasks
from altkraft_onprem.app import create_app
from altkraft_onprem.config import Settings
from tests.cli_helpers import altkraft, empty_database
from tests.conftest import DB_KIND, Env, make_settings, start_service


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def service(env, home):
    # HOME and XDG_RUNTIME_DIR point at an empty directory: the service must leave it empty.
    server = start_service(env, extra_env={"HOME": str(home), "XDG_RUNTIME_DIR": str(home)})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def scraper(env):
    """Headers of a scraper: a token of an Administrator (who holds metrics:read)."""
    return {"Authorization": f"Bearer {env.token()}"}


@pytest.fixture(scope="module")
def shared_queue(env):
    """This process enqueues into the queue the service's consumer reads."""
    tasks.configure_queue(env.settings)
    yield
    tasks.configure_queue(env.settings, immediate=True)


def test_healthz(service):
    response = requests.get(service.url + "/healthz", timeout=5)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_when_database_and_queue_answer(service):
    response = requests.get(service.url + "/readyz", timeout=5)
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "queue": "ok"}


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-directory/altkraft.db",
                                 "postgresql://nobody@127.0.0.1:1/nothing"])
def test_readyz_is_503_when_the_database_is_unreachable(env, url):
    engine = db.build_engine(url)
    try:
        app = create_app(env.settings, engine=engine)
        response = app.test_client().get("/readyz")
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("error")


def test_readyz_is_503_when_the_queue_is_unreachable(env):
    unreachable = env.settings.replace(queue__backend="redis", queue__redis_url="redis://127.0.0.1:1/15")
    tasks.configure_queue(unreachable)
    try:
        response = env.app.test_client().get("/readyz")
    finally:
        tasks.configure_queue(env.settings, immediate=True)
    assert response.status_code == 503
    assert response.get_json()["checks"]["queue"].startswith("error")
    assert response.get_json()["checks"]["database"] == "ok"


def test_metrics_count_requests(service, scraper):
    requests.get(service.url + "/healthz", timeout=5)
    text = requests.get(service.url + "/metrics", headers=scraper, timeout=5).text
    assert 'altkraft_http_requests_total{endpoint="web.healthz",method="GET",status="200"}' in text


def test_metrics_is_prometheus_text(service, scraper):
    response = requests.get(service.url + "/metrics", headers=scraper, timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE altkraft_http_requests_total counter" in response.text


def test_metrics_show_queue_depth(service, scraper):
    text = requests.get(service.url + "/metrics", headers=scraper, timeout=5).text
    assert "# TYPE altkraft_queue_depth gauge" in text
    assert any(line.startswith("altkraft_queue_depth ") for line in text.splitlines())


def test_metrics_count_jobs_run_by_the_services_consumer(service, shared_queue, scraper):
    assert tasks.ping("metrics").get(blocking=True, timeout=30) == "pong:metrics"
    # The job's result is stored before huey's "complete" signal counts it: on a loaded
    # machine the count may land a moment after the result.
    deadline = time.monotonic() + 15
    while True:
        text = requests.get(service.url + "/metrics", headers=scraper, timeout=5).text
        if 'altkraft_jobs_total{outcome="complete",task="ping"}' in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 'altkraft_jobs_total{outcome="complete",task="ping"}' in text, text[-2000:]


def test_metrics_refuse_an_anonymous_scraper_on_loopback(service):
    assert requests.get(service.url + "/metrics", timeout=5).status_code == 401


def test_metrics_answer_an_allowed_network_without_a_token(env):
    server = start_service(env, "--no-consumer", extra_env={
        "ALTKRAFT_SERVER__METRICS_ALLOWED_NETWORKS": '["127.0.0.0/8"]'})
    try:
        response = requests.get(server.url + "/metrics", timeout=5)
    finally:
        server.stop()
    assert response.status_code == 200 and "altkraft_http_requests_total" in response.text


def test_the_console_is_quiet_about_jobs_by_default(service, shared_queue):
    assert tasks.ping("quiet").get(blocking=True, timeout=30) == "pong:quiet"
    log = service.log.read_text()
    assert "ping" not in log and "INFO" not in log, log[-2000:]


def test_verbose_logs_a_line_per_job(env):
    # Its own queue: the job it logs is its own consumer's start-up job, never another's.
    server = start_service(env, "--verbose", extra_env={"ALTKRAFT_QUEUE__NAME": f"verbose-{uuid.uuid4().hex[:8]}"})
    try:
        deadline = time.monotonic() + 30
        while "resume_after_restart" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        server.stop()
    assert "INFO Executing altkraft_onprem.campaigns.jobs.resume_after_restart" in server.log.read_text()


def test_run_says_when_the_public_url_names_another_port(env):
    server = start_service(env, "--no-consumer",
                           extra_env={"ALTKRAFT_SERVER__PUBLIC_URL": "http://127.0.0.1:8080"})
    server.stop()
    assert "Note: the public URL names port 8080, the service listens on" in server.log.read_text()
    assert "set server.public_url (ALTKRAFT_SERVER__PUBLIC_URL) too" in server.log.read_text()


def test_run_says_nothing_about_a_public_url_that_matches(service):
    assert "Note: the public URL" not in service.log.read_text()


def test_gunicorn_control_socket_is_not_created(service, home):
    assert list(home.iterdir()) == []


def test_security_headers_on_pages(service):
    response = requests.get(service.url + "/login", timeout=5)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- the migration gate ------------------------------------------------------------------------

@pytest.fixture()
def unmigrated(tmp_path):
    with empty_database(tmp_path) as url:
        settings = make_settings(tmp_path, url)
        yield Env(settings, None, None, tmp_path, url)


def _env(settings: Settings) -> dict[str, str]:
    return {"ALTKRAFT_DATA_DIR": str(settings.data_dir), "ALTKRAFT_DATABASE__URL": settings["database.url"]}


def test_run_refuses_an_unmigrated_database(unmigrated):
    result = altkraft("run", "--bind", "127.0.0.1:1", env=_env(unmigrated.settings))
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "altkraft db upgrade" in lines[0], lines


@pytest.mark.slow
def test_run_with_migrate_migrates_and_serves(unmigrated):
    server = start_service(unmigrated, "--migrate")
    try:
        assert requests.get(server.url + "/readyz", timeout=5).status_code == 200
        assert "First run: create the administrator at" in server.log.read_text()
    finally:
        server.stop()
    status = altkraft("db", "status", env=_env(unmigrated.settings))
    assert status.returncode == 0 and "up to date" in status.stdout


def test_database_kind_under_test_is_the_configured_one(env):
    assert env.engine.dialect.name == ("postgresql" if DB_KIND == "postgres" else "sqlite")


