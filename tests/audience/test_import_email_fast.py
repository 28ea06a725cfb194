"""The import's fast address check gives exactly what the full email-validator pass gives."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altkraft_onprem.audience.importer.validate import fast_normalise_email
from altkraft_onprem.audience.models import FieldError, normalise_email

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
DOMAINS = ["example.com", "Mail.RU", "yandex.ru", "gmail.com", "sub.example.co.uk", "xn--e1afmkfd.xn--p1ai",
           "пример.рф", "localhost", "example", "-bad.com", "bad-.com", "a..b.com", "example.com.",
           "123.45.67.89", "[127.0.0.1]", "x" * 64 + ".com", "münchen.de", "EXAMPLE.INVALID", "ex_ample.com",
           "a.b", "test", "example.test", "ex ample.com", ""]
REAL_WORLD = [
    "anna.ivanova@yandex.ru", "Ivan.Petrov+news@Gmail.COM", " spaced@example.com ", "o'brien@example.ie",
    "user@пример.рф", "почта@пример.рф", "first..last@example.com", ".lead@example.com",
    "trail.@example.com", '"quoted local"@example.com', "a@b@example.com", "noatsign.example.com",
    "user@localhost", "user@[127.0.0.1]", "x" * 65 + "@example.com", "x" * 64 + "@example.com",
    "user@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 63 + ".com", "USER@EXAMPLE.COM", "user@example.com.",
    "user@-example.com", "user@exam_ple.com", "user@sub.example.co.uk", "info@xn--80ak6aa92e.com",
    "user\t@example.com", "user@ex ample.com", "", "@", "user@", "@example.com", "a@b", "müller@example.de",
    "test@example.test", "test@example.invalid", "nobody@example.onion", "user+tag@mail.ru",
    "foo/bar=baz@example.org", "{weird}|~@example.com", "1234567890@example.com", "user@123.com",
]


def outcome(fn, text):
    try:
        return "ok", fn(text)
    except FieldError as exc:
        return "error", exc.message


def assert_same(text: str) -> None:
    assert outcome(fast_normalise_email, text) == outcome(normalise_email, text), text


@pytest.mark.parametrize("text", REAL_WORLD)
def test_real_world_addresses_agree(text):
    assert_same(text)


@settings(max_examples=400, deadline=None)
@given(st.emails())
def test_generated_valid_addresses_agree(text):
    assert_same(text)


local_parts = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=4).map(".".join) | \
    st.text(ATEXT + ". @\"\\", min_size=0, max_size=70)
domains = st.sampled_from(DOMAINS) | st.from_regex(r"[A-Za-z0-9-]{1,20}(\.[A-Za-z0-9-]{1,20}){0,3}",
                                                   fullmatch=True)


@settings(max_examples=600, deadline=None)
@given(local_parts, domains, st.sampled_from(["", " ", "\t"]))
def test_built_addresses_agree(local, domain, padding):
    assert_same(f"{padding}{local}@{domain}{padding}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_agrees(text):
    assert_same(text)
