"""Hostile templates: published Jinja sandbox escapes, endless work and huge output all fail
with a TemplateProblem (never a crash, never Python internals in the output)."""
from __future__ import annotations

import pytest

from altkraft_onprem.messages.render import TemplateProblem, compile_version

from .conftest import context, version


def _render(html: str, **ctx) -> str:
    return compile_version(version(html)).render(context() | ctx).html


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ subscriber.__class__.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ range.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ '{0.__class__.__mro__}'.format(subscriber) }}",
    "{{ '{0.__class__}'.format_map({'a': 1}) }}",
    "{{ ('{0.__cl' ~ 'ass__}') | attr('format') }}",
    "{{ (subscriber | attr('__class__')) }}",
    "{{ subscriber.email.format }}",
    "{{ request.application.__globals__ }}",
    "{{ config.items() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{% set x = subscriber.custom.update({'a': 1}) %}{{ subscriber.custom }}",
    "{{ subscriber.custom.pop('loyalty_tier') }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_sandbox_escape_fails_cleanly(payload):
    with pytest.raises(TemplateProblem) as caught:
        _render(payload)
    assert caught.value.message
    assert "<class" not in caught.value.message and "os" != caught.value.message


def test_format_via_attr_is_refused_with_a_clear_message():
    with pytest.raises(TemplateProblem) as caught:
        _render("{{ ('{0}' | attr('format'))(1) }}")
    assert "not allowed" in caught.value.message or "undefined" in caught.value.message


def test_str_format_is_refused():
    with pytest.raises(TemplateProblem) as caught:
        _render("{{ '{}'.format(1) }}")
    assert "format" in caught.value.message


def test_nested_loops_hit_the_step_budget():
    with pytest.raises(TemplateProblem) as caught:
        _render("{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}")
    assert "too much work" in caught.value.message


def test_huge_range_is_refused():
    with pytest.raises(TemplateProblem) as caught:
        _render("{% for a in range(10**9) %}x{% endfor %}")
    assert "range" in caught.value.message


def test_recursive_macro_fails_cleanly():
    with pytest.raises(TemplateProblem):
        _render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}")


def test_string_multiplication_is_capped():
    with pytest.raises(TemplateProblem) as caught:
        _render("{{ 'x' * 1000000000 }}")
    assert "exceed" in caught.value.message


def test_doubling_through_recursion_is_capped():
    with pytest.raises(TemplateProblem):
        _render("{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
                "{% endmacro %}{{ d('xxxxxxxx', 40) }}")


def test_huge_padding_is_refused():
    for payload in ("{{ 'x'.ljust(10**9) }}", "{{ 'x' | center(10**9) }}",
                    "{{ '%0999999999d' % 1 }}", "{{ '%999999999s' | format('a') }}",
                    "{{ 'x' | indent(10**9) }}", "{{ 2 ** 100000000 }}"):
        with pytest.raises(TemplateProblem):
            _render(payload)


def test_replace_explosion_is_refused():
    with pytest.raises(TemplateProblem):
        _render("{{ ('x' * 100000) | replace('x', 'y' * 100000) }}")


def test_total_output_is_capped():
    # Each value is small, but together they exceed the output limit.
    with pytest.raises(TemplateProblem) as caught:
        _render("{% for a in range(10000) %}{{ 'x' * 999999 }}{% endfor %}")
    assert "grew over" in caught.value.message or "too much work" in caught.value.message


def test_ordinary_loops_still_work():
    assert "0,1,2," in _render("{% for i in range(3) %}{{ i }},{% endfor %}")
