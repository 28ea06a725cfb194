"""Deliverability tests: a module's app whose DNS checks ask a real DNS server on 127.0.0.1
(dnslib, tests/installer/dns_server.py), and helpers to publish a domain's records there."""
from __future__ import annotations

import dkim as dkimpy
import dns.resolver
import pytest

from altkraft_onprem import db, tasks
from altkraft_onprem.app import create_app
from altkraft_onprem.delivery import dkimkeys
from tests.api.conftest import Api
from tests.conftest import Env, fresh_database, make_settings
from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)

IP = "192.0.2.10"
HELO = "mail.example.com"


def make_env(template_db, tmp_path_factory, dns_server, **extra):  # noqa: F811
    """A module's world whose checks ask `dns_server`; `extra` settings over the defaults here."""
    data_dir = tmp_path_factory.mktemp("data")
    url, drop = fresh_database(template_db, data_dir)
    settings = make_settings(data_dir, url, **{
        "smtp.relays": [{"host": "127.0.0.1", "helo": HELO}],
        "deliverability.sending_ips": [IP],
        "deliverability.nameservers": [dns_server.address],
        "server.public_url": "https://altkraft.example.com", **extra})
    engine = db.build_engine(settings.database_url)
    app = create_app(settings, engine=engine)
    app.config["TESTING"] = True
    tasks.configure_queue(settings, immediate=True)
    tasks.bind_app(app)
    yield Env(settings, engine, app, data_dir, url)
    engine.dispose()
    drop()


@pytest.fixture(scope="module")
def env(template_db, tmp_path_factory, dns_server) -> Env:  # noqa: F811
    yield from make_env(template_db, tmp_path_factory, dns_server)


@pytest.fixture(scope="module")
def admin_token(env) -> str:
    return env.token("Administrator")


@pytest.fixture()
def api(env, admin_token) -> Api:
    return Api(env.app.test_client(), admin_token)


def key_records(domain: dict) -> dict[str, dict]:
    """Zone entries publishing every key of a domain (as the API answered it)."""
    return {k["record_name"]: {"TXT": [k["record"]]} for k in domain["keys"]}


def dns_lookup(server):
    """A dnsfunc for dkim.verify that asks the test DNS server."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port

    def lookup(name, timeout=5):
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(b"".join(r.strings) for r in answer)
    return lookup


def verifies(message: bytes, server) -> bool:
    """Whether every DKIM signature of the message verifies against the test DNS server."""
    count = message.count(b"DKIM-Signature:")
    return count > 0 and all(dkimpy.DKIM(message).verify(idx=i, dnsfunc=dns_lookup(server))
                             for i in range(count))


def public_record(key_file: str) -> str:
    return dkimkeys.public_key(dkimkeys.read_key_file(key_file)).txt
