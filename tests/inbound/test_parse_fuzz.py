"""The parsers never raise, whatever arrives: random bytes, mangled reports, odd structures."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altkraft_onprem.inbound import parse, rules
from tests.inbound import reports

ORIGINAL = (b"Return-Path: <bounces+1-2-deadbeef@bounces.example.com>\r\nFrom: a@example.com\r\n"
            b"To: b@example.net\r\nMessage-ID: <x.1@example.com>\r\nSubject: hi\r\n\r\nbody\r\n")
SAMPLES = [reports.dsn(ORIGINAL, recipient="b@example.net"),
           reports.dsn(ORIGINAL, recipient="b@example.net", headers_only=False),
           reports.arf(ORIGINAL), reports.auto_reply("b@example.net")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(raw):
    result = parse.parse(raw)
    assert result.kind in ("dsn", "arf", "auto_reply", "bounce", "other")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.integers(min_value=0, max_value=4000),
       st.integers(min_value=0, max_value=200), st.binary(max_size=50))
def test_mangled_reports_never_raise(sample, at, cut, noise):
    at = min(at, len(sample))
    raw = sample[:at] + noise + sample[at + cut:]
    result = parse.parse(raw)
    for recipient in result.recipients:
        assert len(recipient.diagnostic) <= parse.MAX_TEXT
        rules.classify(recipient.status, recipient.diagnostic)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_classification_of_any_text_is_a_known_class(status, text):
    assert rules.classify(status, text)[0] in ("hard", "soft", "policy", "content", "unknown")


def test_endless_header_and_deep_nesting_are_read():
    deep = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 500
    assert parse.parse(deep).kind == "other"
    endless = b"Subject: " + b"x" * 2_000_000 + b"\r\n\r\nbody"
    assert parse.parse(endless).kind == "other"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_dmarc_reader_refuses_junk_with_its_own_error(raw):
    from altkraft_onprem.inbound import dmarc

    try:
        dmarc.read_report(raw)
    except dmarc.DmarcError:
        pass
