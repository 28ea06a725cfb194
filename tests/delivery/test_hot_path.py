"""The sender's fast paths give exactly what the general code gives: batch-minted tracking
tokens, signed unsubscribe links, dot-stuffing, the 998-octet line check, MIME bodies from
bytes, DKIM header selection and relaxed body canonicalisation, the place of the tracking
pixels."""
from __future__ import annotations

import re

import dkim as dkimpy
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from altkraft_onprem.audience import links
from altkraft_onprem.delivery import dkim as signing
from altkraft_onprem.delivery import mime, smtp
from altkraft_onprem.tracking import tokens
from tests.conftest import make_settings

ids = st.integers(min_value=0, max_value=2**40)


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("hot"), "sqlite:///:memory:",
                         server__public_url="https://mail.example.com")


@hypothesis_settings(max_examples=200, deadline=None)
@given(campaign=ids, subscriber=ids, version=ids,
       links=st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=30))
def test_minted_click_tokens_are_the_encoders(app_settings, campaign, subscriber, version, links):
    key = tokens.tracking_key(app_settings)
    minter = tokens.Minter(app_settings, campaign, version)
    found = minter.click_tokens(subscriber, [str(i).encode() for i in links])
    for index in links:
        token = found[str(index).encode()].decode("ascii")
        assert token == tokens.encode(key, tokens.Target("c", campaign, subscriber, version, index))
        assert tokens.decode(key, token, "c") == tokens.Target("c", campaign, subscriber, version, index)


def test_minted_tail_is_the_pixel_and_honeypot_markup(app_settings):
    minter = tokens.Minter(app_settings, 12, 34)
    both = minter.tail_html(5678, honeypot=True, pixels=True)
    assert both == (tokens.honeypot_html(app_settings, 12, 5678, 34)
                    + tokens.pixel_html(app_settings, 12, 5678, 34))
    assert minter.tail_html(5678, honeypot=False, pixels=True) == tokens.pixel_html(app_settings, 12, 5678, 34)
    assert minter.tail_html(5678, honeypot=False, pixels=False) == ""
    # one tracking image: two 1x1 images alone score SpamAssassin's HTML_IMAGE_ONLY_12
    assert both.count("<img") == 1 and "/t/i/" in both


def _reference_stuffing(data: bytes) -> bytes:
    data = re.sub(rb"^\.", b"..", data, flags=re.M)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


@given(st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\n", b"a", b" .", b"\r"]), max_size=40))
def test_dot_stuffing_matches_the_rfc_rule(pieces):
    data = b"".join(pieces)
    assert smtp.dot_stuffed(data) == _reference_stuffing(data)


@pytest.mark.parametrize("eight_bit", [True, False])
@pytest.mark.parametrize("content", ["plain ascii\nline two\n", "Здравствуйте, мир\n.точка\n",
                                     "mostly ascii with one ё\n" * 20, "x" * 1200 + "\n"])
def test_bodies_from_utf8_bytes_equal_bodies_from_text(content, eight_bit):
    assert mime._encode_body(content.encode("utf-8"), "html", eight_bit) == \
        mime._encode_body(content, "html", eight_bit)


link_ids = st.one_of(st.none(), st.integers(min_value=1, max_value=2**31 - 1),
                     st.sampled_from([1, 11, 111111, 1111111111, 2222222222 // 2]))


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(link_ids, min_size=1, max_size=3))
def test_link_signer_signs_as_itsdangerous(app_settings, ids):
    for salt in (links.SALT_UNSUBSCRIBE, links.SALT_PREFERENCES):
        assert links.LinkSigner(app_settings, salt).dumps(ids) == links._plain(app_settings, salt).dumps(ids)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2100), min_size=1, max_size=8), st.booleans())
def test_line_length_check_is_exact(lengths, final_newline):
    raw = b"\n".join(b"x" * n for n in lengths) + (b"\n" if final_newline else b"")
    assert mime.lines_fit(raw) == (max(lengths) <= mime.MAX_LINE)


@pytest.mark.parametrize("lengths", [[998], [999], [0, 998], [0, 999], [498, 999], [499, 998],
                                     [500, 997, 999], [1, 1997], [2000], [996, 996, 996]])
def test_line_length_check_at_the_limit(lengths):
    raw = b"\n".join(b"x" * n for n in lengths)
    assert mime.lines_fit(raw) == (max(lengths) <= mime.MAX_LINE)


header_names = st.sampled_from([b"from", b"to", b"subject", b"date", b"list-unsubscribe", b"x-other"])


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"Z", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"=20"]),
                max_size=60).map(b"".join))
def test_relaxed_body_is_dkimpys(body):
    assert signing.relaxed_body(body) == Relaxed.canonicalize_body(body)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(header_names, st.binary(max_size=6)), max_size=10),
       st.lists(header_names, max_size=12))
def test_header_selection_is_dkimpys(headers, include):
    headers = [(name.capitalize() if i % 2 else name, value) for i, (name, value) in enumerate(headers)]
    assert signing.select_headers(headers, tuple(include)) == dkimpy.select_headers(headers, include)


@hypothesis_settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"x" * 300, b"</body>", b"</BODY  >", b"</bo", b"dy>", b"\n",
                                 b"<p>", b"</body\n>"]), max_size=30))
def test_the_last_body_end_is_found_as_a_full_search_finds_it(parts):
    from altkraft_onprem.sending.compose import _BODY_END, _last_body_end

    html = b"".join(parts)
    ends = list(_BODY_END.finditer(html))
    assert _last_body_end(html) == (ends[-1].start() if ends else -1)
