"""The classification table: examples from real bounces, and reproducibility by version."""
from __future__ import annotations

import pytest

from altkraft_onprem.delivery import providers
from altkraft_onprem.inbound import rules


@pytest.mark.parametrize("status, text, expected", [
    ("5.1.1", "550 5.1.1 <a@b>: Recipient address rejected: User unknown in virtual mailbox table", "hard"),
    ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "hard"),
    ("5.1.2", "550 5.1.2 Host unknown (Name server: example.invalid: host not found)", "hard"),
    ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled.", "hard"),
    ("", "550 Requested action not taken: mailbox unavailable (user unknown)", "hard"),
    ("", "550 Message was not accepted -- invalid mailbox.  Local mailbox a@mail.ru is unavailable: user not found", "hard"),
    ("4.2.2", "452 4.2.2 The email account that you tried to reach is over quota.", "soft"),
    ("5.2.2", "552 5.2.2 Mailbox full", "soft"),
    ("4.4.1", "connection timed out", "soft"),
    ("4.3.0", "451 4.3.0 Temporary system problem", "soft"),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.25] blocked using zen.spamhaus.org", "policy"),
    ("4.7.0", "421 4.7.0 [192.0.2.25] Our system has detected an unusual rate of unsolicited mail", "policy"),
    ("5.7.26", "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy", "policy"),
    ("5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering.", "content"),
    ("5.0.0", "550 5.0.0 something nobody has seen before", "unknown"),
    ("", "", "unknown"),
])
def test_classification_examples(status, text, expected):
    assert rules.classify(status, text)[0] == expected


def test_a_version_classifies_the_same_way_forever():
    for version in rules.TABLES:
        assert rules.classify("5.1.1", "user unknown", version) == rules.classify("5.1.1", "user unknown", version)
    assert rules.TABLES[rules.CURRENT_VERSION][-1].bounce_class == "unknown"


@pytest.mark.parametrize("address, provider", [
    ("a@gmail.com", "gmail"), ("a@GoogleMail.com", "gmail"), ("a@hotmail.com", "outlook"),
    ("a@outlook.com", "outlook"), ("a@aol.com", "yahoo"), ("a@yahoo.com", "yahoo"),
    ("a@bk.ru", "mailru"), ("a@mail.ru", "mailru"), ("a@ya.ru", "yandex"), ("a@example.org", "other"),
])
def test_providers(address, provider):
    assert providers.provider(address) == provider
