"""Domain names as people type them: one normalised form, or BadName saying why (fuzzed);
the names a blocklist is asked."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from altkraft_onprem.deliverability.blocklists import query_name
from altkraft_onprem.deliverability.models import BadName, display_name, normalise_domain


@given(st.text(max_size=300))
def test_any_text_is_a_normalised_name_or_a_bad_name(text):
    try:
        name = normalise_domain(text)
    except BadName as exc:
        assert str(exc)
        return
    assert name == name.lower() and name.isascii() and not name.endswith(".")
    assert normalise_domain(name) == name                   # one form: normalising is stable
    assert normalise_domain(display_name(name)) == name


@pytest.mark.parametrize("typed", ["ПРИМЕР.РФ", "пример.рф.", "xn--e1afmkfd.xn--p1ai"])
def test_a_russian_domain_has_one_form(typed):
    assert normalise_domain(typed) == "xn--e1afmkfd.xn--p1ai"


@pytest.mark.parametrize("subject, zone, asked", [
    ("192.0.2.10", "zen.spamhaus.org", "10.2.0.192.zen.spamhaus.org"),
    ("2001:db8::1", "zen.spamhaus.org",
     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org"),
    ("example.com", "dbl.spamhaus.org", "example.com.dbl.spamhaus.org"),
])
def test_the_name_a_blocklist_is_asked(subject, zone, asked):
    assert query_name(subject, zone) == asked
