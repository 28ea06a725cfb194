"""A message rendered for no one in particular (the clickmap's copy of what was sent): every
personal variable shows its own name — "[subscriber.first_name]", "[data.promo]" — instead of a
made-up person's values or a blank, while the send's own values (the list, the campaign) are
real."""
from __future__ import annotations

import re
from html import escape
from typing import Any

from .render import Rendered, compile_version


class Placeholder:
    """A value that prints as its own path. Any attribute or key of it is another placeholder
    one step deeper; it is true (so `{% if %}` shows its branch), iterates as empty, and is
    not Undefined (so `| default(…)` keeps it)."""

    __slots__ = ("_path",)

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return Placeholder(f"{self._path}.{name}")

    def __getitem__(self, key: Any) -> Placeholder:
        return Placeholder(f"{self._path}.{key}")

    def __str__(self) -> str:
        return f"[{self._path}]"

    def __html__(self) -> str:
        return escape(str(self))

    def __iter__(self):
        return iter(())

    def __bool__(self) -> bool:
        return True


def placeholder_context(*, list_name: str, campaign_name: str, own_links: str = "#") -> dict[str, Any]:
    """The render context of a placeholder recipient of a campaign sent to `list_name`;
    `own_links`: what the recipient's own links (unsubscribe, preferences, web copy) are."""
    return {"subscriber": Placeholder("subscriber"), "data": Placeholder("data"),
            "list": {"name": list_name}, "campaign": {"name": campaign_name},
            "unsubscribe_url": own_links, "preferences_url": own_links,
            "view_in_browser_url": own_links}


def render_for_placeholder(version: dict[str, Any], *, list_name: str, campaign_name: str,
                           link_rewriter=None, own_links: str = "#") -> Rendered:
    """The version as a campaign renders it, for the placeholder recipient. TemplateProblem
    when the template cannot be rendered even so (arithmetic on a personal value, say)."""
    compiled = compile_version(version, link_rewriter=link_rewriter)
    return compiled.render(placeholder_context(list_name=list_name, campaign_name=campaign_name,
                                               own_links=own_links))


# Shown to people on a page (the clickmap, the public archive): the links get a focus ring of
# 3:1 (WCAG 2.4.7), and a language taken from the recipient ("[subscriber.language]" for the
# placeholder, not a language) becomes the reader's.
_FOCUS_STYLE = "<style>a:focus-visible{outline:3px solid #3451d1 !important;outline-offset:2px}</style>"
_PLACEHOLDER_LANG = re.compile(r'(<html\b[^>]*?\blang=")\[[^"]*\]"', re.I)
_HEAD_END = re.compile(r"</head\s*>", re.I)


def readable(html: str, lang: str) -> str:
    """A placeholder rendering made fit for a page: a real `lang`, a visible focus ring."""
    html = _PLACEHOLDER_LANG.sub(lambda m: m.group(1) + escape(lang) + '"', html, 1)
    head = _HEAD_END.search(html)
    return html[:head.start()] + _FOCUS_STYLE + html[head.start():] if head else _FOCUS_STYLE + html
