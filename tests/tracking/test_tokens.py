"""Signed tracking tokens: round trip, compactness, tampering, no redirect target inside."""
from __future__ import annotations

import base64

import pytest

from altkraft_onprem.tracking import tokens
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("tok"), "sqlite:///:memory:",
                         server__public_url="https://mail.example.com")


@pytest.fixture(scope="module")
def key(settings):
    return tokens.tracking_key(settings)


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_click_url_round_trips(settings, key):
    url = tokens.click_url(settings, 12, 3456789, 77, 5)
    assert url.startswith("https://mail.example.com/t/c/")
    assert tokens.decode(key, _token(url), "c") == tokens.Target("c", 12, 3456789, 77, 5)


def test_open_and_read_urls_round_trip(settings, key):
    assert tokens.decode(key, _token(tokens.open_url(settings, 1, 2, 3)), "o") == tokens.Target("o", 1, 2, 3)
    assert tokens.decode(key, _token(tokens.read_url(settings, 1, 2, 3)), "r") == tokens.Target("r", 1, 2, 3)
    assert tokens.decode(key, _token(tokens.image_url(settings, 1, 2, 3)), "i") == tokens.Target("i", 1, 2, 3)


def test_tokens_are_short(settings):
    assert len(_token(tokens.click_url(settings, 100000, 9_999_999, 500000, 120))) <= 32


def test_a_token_of_another_kind_is_refused(settings, key):
    assert tokens.decode(key, _token(tokens.open_url(settings, 1, 2, 3)), "c") is None
    assert tokens.decode(key, _token(tokens.image_url(settings, 1, 2, 3)), "o") is None


def test_every_flipped_bit_is_refused(settings, key):
    token = _token(tokens.click_url(settings, 12, 345, 77, 5))
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for position in range(len(raw) * 8):
        changed = bytearray(raw)
        changed[position // 8] ^= 1 << (position % 8)
        forged = base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        assert tokens.decode(key, forged, "c") is None


def test_garbage_and_truncation_are_refused(settings, key):
    token = _token(tokens.click_url(settings, 12, 345, 77, 5))
    for bad in ("", "x", "!!!!", token[:-1], token + "A", "A" * 200, token[:5] + "+" + token[6:]):
        assert tokens.decode(key, bad, "c") is None


def test_another_secret_refuses_the_token(settings, tmp_path):
    token = _token(tokens.click_url(settings, 12, 345, 77, 5))
    other = make_settings(tmp_path, "sqlite:///:memory:", secret_key_file=str(tmp_path / "other"))
    (tmp_path / "other").write_text("z" * 48)
    assert tokens.decode(tokens.tracking_key(other), token, "c") is None
