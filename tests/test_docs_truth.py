"""Docs that once said more than the code does: the sentences that were wrong stay out, and
the ones that replaced them stay in (each names what the code really does today)."""
from __future__ import annotations

from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _text(name: str) -> str:
    return " ".join((DOCS / name).read_text(encoding="utf-8").split())


@pytest.mark.parametrize("name, wrong", [
    ("install.md", "so bounces come back"),
    ("install.md", "built-in list of common two-level suffixes"),
    ("architecture.md", "unsubscribes, bounces and complaints feed the subscriber's state"),
    ("audience.md", "unsubscribe-from-everything, bounces and complaints. Removal"),
])
def test_a_claim_the_code_does_not_keep_is_gone(name, wrong):
    assert wrong not in _text(name)


@pytest.mark.parametrize("name, said", [
    ("install.md", "They change anything only when that mail reaches `altkraft inbound`, which is "
                   "not started by default"),
    ("install.md", "organisational domain is found with the full Public Suffix List"),
    ("architecture.md", "are acted on only by `altkraft inbound`"),
    ("audience.md", "those only when the bounce domain's mail reaches `altkraft inbound`"),
    ("campaigns.md", "a mail to the `mailto:` address unsubscribes only when the bounce domain's "
                     "mail reaches `altkraft inbound`"),
])
def test_what_happens_today_is_said(name, said):
    assert said in _text(name)
