"""The starting layouts that ship with the product, rendered as a send renders them (CSS
inlined, a recipient without a language), pass axe-core's WCAG 2.1 A and AA rules at desktop
and phone width in real Chromium: what a new user sends first is accessible."""
from __future__ import annotations

import pytest

from altkraft_onprem.messages.render import compile_version
from altkraft_onprem.messages.starters import STARTERS
from tests.a11y import DESKTOP, PHONE, axe_violations, describe, sideways

from .conftest import context, version

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("starter", STARTERS, ids=[s.file for s in STARTERS])
def test_a_starting_layout_passes_axe(page, starter):
    recipient = context(language=None)
    recipient["campaign"].update(subject=starter.subject, preheader=starter.preheader)
    rendered = compile_version(version(html=starter.html(), subject=starter.subject)).render(recipient)
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        page.set_content(rendered.html)
        assert not axe_violations(page), describe(axe_violations(page))
    assert 'lang="en"' in rendered.html
    assert sideways(page) == 0
