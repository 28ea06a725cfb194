"""Campaign tests share one SMTP sink per module unless a module asks for a fresh one."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sink(module_smtp_sink):
    return module_smtp_sink
