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
    # Mail also reaches the pipeline from a polled IMAP mailbox, not only through the receiver.
    ("architecture.md", "are acted on only by `altkraft inbound`"),
    ("install.md", "They change anything only when that mail reaches `altkraft inbound`"),
    ("install.md", "pass / warn / fail per check (PTR, SPF, DKIM, DMARC, MX)"),
])
def test_a_claim_the_code_does_not_keep_is_gone(name, wrong):
    assert wrong not in _text(name)


@pytest.mark.parametrize("name, said", [
    ("install.md", "They change anything only when that mail reaches the appliance: `altkraft "
                   "inbound`, which is not started by default, or a mailbox it polls over IMAP"),
    ("install.md", "organisational domain is found with the full Public Suffix List"),
    ("architecture.md", "are acted on only when that mail reaches the appliance: `altkraft inbound`"),
    ("architecture.md", "are applied by the service itself"),
    ("audience.md", "bounces and complaints that come back by mail only when that mail reaches the "
                    "appliance"),
    ("campaigns.md", "a mail to the `mailto:` address unsubscribes, like the one-click POST, only "
                     "when the bounce domain's mail reaches the appliance"),
])
def test_what_happens_today_is_said(name, said):
    assert said in _text(name)


@pytest.mark.parametrize("name", ["install.md", "architecture.md", "audience.md", "campaigns.md"])
def test_mail_that_comes_back_has_both_ways_in(name):
    """Where a page says returning mail needs `altkraft inbound`, it names the other way in the
    code has: an IMAP mailbox the job consumer polls (inbound/imap.py)."""
    text = _text(name)
    assert "`altkraft inbound`" in text and "[[inbound.imap]]" in text


@pytest.mark.parametrize("name", ["install.md", "audience.md", "deliverability.md"])
def test_the_soft_bounce_rule_states_the_defaults(name):
    from altkraft_onprem.config.declared import BY_KEY

    text = _text(name)
    for key in ("inbound.soft_bounce_limit", "inbound.soft_bounce_days"):
        assert f"`{key}`" in text
        assert f"({BY_KEY[key].default})" in text, key


def test_check_dns_is_described_as_it_runs():
    """install.md names every check `altkraft-install check-dns` runs, every status it prints,
    and the keys of its JSON (delivery/dnscheck.py)."""
    from altkraft_onprem.delivery import dnscheck

    text = _text("install.md")
    shown = {"ptr": "PTR", "spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC", "mx": "MX",
             "mta_sts": "MTA-STS", "tls_rpt": "TLS-RPT"}
    assert set(shown) == set(dnscheck.CHECKS)
    assert "(" + ", ".join(shown[name] for name in dnscheck.CHECKS) + ")" in text
    for status in ("pass", "warn", "fail", "missing", "unknown"):
        assert f" {status} " in text or f" {status}," in text or f"{status} (" in text, status
    for name in dnscheck.CHECKS:
        assert f'"{name}"' in text, name
