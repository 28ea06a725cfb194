"""Installer test fixtures: the DNS server, and an empty database for `install` to migrate."""
from __future__ import annotations

import contextlib
import uuid

import pytest
from sqlalchemy import text

from tests.conftest import DB_KIND, _pg_admin, _pg_url
from tests.installer.dns_server import dns_server  # noqa: F401  (fixture)


@contextlib.contextmanager
def empty_database():
    """"" (SQLite under the install root) or the URL of a new, empty Postgres database."""
    if DB_KIND != "postgres":
        yield ""
        return
    name = f"ak_inst_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name).replace("+psycopg", "")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def database_url():
    with empty_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url():
    with empty_database() as url:
        yield url
