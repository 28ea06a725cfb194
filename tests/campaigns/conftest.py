"""Campaign tests share one SMTP sink per module unless a module asks for a fresh one, and
browser tests one running service (`altkraft run`, the sink as its relay) per module."""
from __future__ import annotations

import pytest

from tests.campaigns.helpers import start_sending_service


@pytest.fixture(scope="module")
def sink(module_smtp_sink):
    return module_smtp_sink


@pytest.fixture(scope="module")
def service(env, sink):
    server = start_sending_service(env, sink)
    yield server
    server.stop()
