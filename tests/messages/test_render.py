"""Rendering: variables, defaults, dates, links, CSS inlining, text version, caching, errors."""
from __future__ import annotations

import pytest

from altkraft_onprem.messages.render import TemplateProblem, check_version, compile_version

from .conftest import context, version


def test_standard_field_is_printed():
    rendered = compile_version(version()).render(context())
    assert "<p>Hello Ann</p>" in rendered.html


def test_default_applies_to_a_missing_field():
    rendered = compile_version(version()).render(context(first_name=None) | {"subscriber": {"custom": {}}})
    assert "Hello friend" in rendered.html


def test_custom_field_is_printed():
    compiled = compile_version(version("<b>{{ subscriber.custom.loyalty_tier }}</b>"))
    assert "<b>Gold</b>" in compiled.render(context()).html


def test_values_are_html_escaped():
    rendered = compile_version(version()).render(context(first_name="<script>x</script>"))
    assert "<script>x" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_subject_is_personalised_and_kept_on_one_line():
    compiled = compile_version(version(subject="🎉 {{ subscriber.first_name }}\nBcc: x@evil"))
    assert compiled.render(context()).subject == "🎉 Ann Bcc: x@evil"


def test_localtime_uses_the_subscriber_timezone():
    compiled = compile_version(version("{{ subscriber.created_at | localtime('%Y-%m-%d %H:%M') }}"))
    assert "2024-02-01 00:30" in compiled.render(context()).html


def test_literal_links_are_rewritten_and_listed():
    html = ('<a href="https://shop.example/a?x=1&amp;y=2">A</a> <a href="{{ unsubscribe_url }}">U</a>'
            ' <a href="mailto:x@example.com">M</a> <a href="https://shop.example/b">B</a>')
    compiled = compile_version(version(html), link_rewriter=lambda url, i: f"https://t.example/c/{i}")
    assert compiled.links == [(0, "https://shop.example/a?x=1&y=2"), (1, "https://shop.example/b")]
    out = compiled.render(context()).html
    assert 'href="https://t.example/c/0"' in out and 'href="https://t.example/c/1"' in out
    assert 'href="https://app.example/p/u/1"' in out and "mailto:x@example.com" in out


def test_links_are_the_same_without_a_rewriter(newsletter_html):
    plain = compile_version(version(newsletter_html))
    tracked = compile_version(version(newsletter_html), link_rewriter=lambda url, i: f"https://t/{i}")
    assert plain.links == tracked.links and len(plain.links) == 42


def test_css_is_inlined_and_media_queries_kept(newsletter_html):
    html = compile_version(version(newsletter_html)).render(context()).html
    assert 'class="hero" style="' in html
    head = html.split("</head>")[0]
    assert "@media only screen and (max-width: 620px)" in head


def test_conditional_block_survives_inlining(newsletter_html):
    compiled = compile_version(version(newsletter_html))
    gold = compiled.render(context()).html
    silver = compiled.render(context(custom={"loyalty_tier": "Silver"})).html
    assert "Gold members" in gold and "Gold members" not in silver


def test_text_version_keeps_links_as_text_and_url(newsletter_html):
    text = compile_version(version(newsletter_html)).render(context()).text
    assert "Shop the sale [https://shop.example.com/sale?from=hero]" in text
    assert "Hello Ann, the winter sale is here" in text
    assert "<" not in text.replace("<-", "")


def test_text_version_follows_the_conditional(newsletter_html):
    compiled = compile_version(version(newsletter_html))
    assert "Gold members" in compiled.render(context()).text
    assert "Gold members" not in compiled.render(context(custom={})).text


def test_hand_written_text_is_used_and_its_links_rewritten():
    compiled = compile_version(
        version('<a href="https://shop.example/x">X</a>', text="Hi {{ subscriber.first_name }}: "
                "https://shop.example/x", text_follows_html=False),
        link_rewriter=lambda url, i: f"https://t.example/{i}")
    assert compiled.render(context()).text == "Hi Ann: https://t.example/0"


def test_preheader_is_added_when_the_template_does_not_print_it():
    compiled = compile_version(version("<html><body><p>x</p></body></html>", preheader="Sale {{ subscriber.city }}"))
    assert "Sale Oslo</div>" in compiled.render(context()).html


def test_compile_is_cached_per_version():
    row = version("<p>{{ subscriber.email }}</p>", id=991)
    assert compile_version(row) is compile_version(dict(row))


def test_syntax_error_names_the_line():
    with pytest.raises(TemplateProblem) as caught:
        compile_version(version("<p>ok</p>\n<p>{% if x %}</p>\n"))
    assert caught.value.line == 2 and caught.value.part == "html"


def test_subject_syntax_error_names_the_subject():
    with pytest.raises(TemplateProblem) as caught:
        compile_version(version(subject="Hi {{ subscriber.first_name "))
    assert caught.value.part == "subject"


def test_undefined_variable_fails_the_render_with_its_line():
    compiled = compile_version(version("<p>a</p>\n<p>b</p>\n<p>{{ subscriber.nickname }}</p>"))
    with pytest.raises(TemplateProblem) as caught:
        compiled.render(context())
    assert caught.value.line == 3 and "subscriber.nickname" in caught.value.message


@pytest.mark.parametrize("expression, missing", [
    ("{{ data.promo }}", "data.promo"),
    ("{{ data['promo'] }}", "data.promo"),
    ("{{ data.offer.code }}", "data.offer"),
    ("{{ data.shop.promo | upper }}", "data.shop.promo"),
    ("{{ 'Code: ' ~ subscriber.custom.promo }}", "subscriber.custom.promo"),
])
def test_a_missing_value_is_an_error_naming_the_variable(expression, missing):
    """Issue 15 item 2: one rule for previews, test sends and campaign sends — a variable
    without a value and without a default is an error (it went out as "Promo code: ")."""
    compiled = compile_version(version(f"<p>Hello</p>\n<p>Promo code: {expression}</p>"))
    with pytest.raises(TemplateProblem) as caught:
        compiled.render(context() | {"data": {"shop": {}}})
    assert caught.value.line == 2 and caught.value.part == "html"
    assert caught.value.message.startswith(f"{missing} has no value")


def test_a_missing_value_in_the_subject_names_the_subject():
    with pytest.raises(TemplateProblem) as caught:
        compile_version(version(subject="Your code {{ data.promo }}")).render(context())
    assert caught.value.part == "subject" and "data.promo" in caught.value.message


def test_a_default_or_a_test_keeps_a_missing_value_from_failing():
    compiled = compile_version(version(
        "<p>[{{ data.promo | default('none') }}]{% if data.promo %}x{% endif %}"
        "{% for item in data.items_list %}{{ item }}{% endfor %}</p>"))
    assert "<p>[none]</p>" in compiled.render(context()).html


def test_runtime_error_line_maps_back_after_inlining(newsletter_html):
    broken = newsletter_html.replace("{{ subscriber.id }}", "{{ subscriber.id / 0 }}")
    line = next(i for i, text in enumerate(broken.splitlines(), 1) if "subscriber.id / 0" in text)
    with pytest.raises(TemplateProblem) as caught:
        compile_version(version(broken)).render(context())
    assert caught.value.line == line and "ZeroDivisionError" in caught.value.message


def test_unknown_top_level_variable_is_reported_with_its_line():
    problems = check_version(version("<p>x</p>\n{{ customer.name }}"))
    assert [(p.line, p.part) for p in problems] == [(2, "html")]
    assert "customer" in problems[0].message


def test_external_data_is_available():
    compiled = compile_version(version("{% for p in data.products %}{{ p.name }};{% endfor %}"))
    assert "A;B;" in compiled.render(context() | {"data": {"products": [{"name": "A"}, {"name": "B"}]}}).html
