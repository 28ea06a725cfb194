"""Accessibility checks for browser tests: axe-core's WCAG 2.1 A/AA rules, sideways scrolling
at phone width, the focus indicator's contrast, and discovery of the app's pages from its
routes and links (so a page added later is checked without touching the tests).

axe-core comes from npm like the other front-end libraries (package.json's devDependencies;
`make frontend` runs `npm ci`). It is a test tool, so it is read from node_modules and never
copied into the package's static folder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from altkraft_onprem.route_permission import PUBLIC, SIGNED_IN, declared

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

# GET routes that are not pages a person reads: data for scripts, downloads, feeds, tracking,
# health; and by name those whose path does not say so.
NOT_PAGES = re.compile(r"(\.(json|csv|eml|txt|xml|atom)$)|^/(static|t)/|^/(healthz|readyz|metrics)$"
                       r"|^/p/media/|^/api/(?!v1/docs$)")
NOT_PAGE_ENDPOINTS = {
    "access.sso_start": "a redirect to the identity provider",
    "access.sso_callback": "the identity provider's way back: a redirect",
    "deliverability.message_checks": "JSON for the editor's pre-send checks tab",
    "deliverability.campaign_checks": "JSON for the campaign page's pre-send checks",
    "audience_public.captcha_challenge": "JSON: the public form's proof-of-work challenge",
}


@cache
def axe_source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make frontend` (npm ci) first", pytrace=False)
    return AXE.read_text(encoding="utf-8")


def axe_violations(page, exclude: tuple[str, ...] = ()) -> list[dict]:
    """axe-core's WCAG 2.1 A and AA violations on the page's current document (frames are
    the message's own HTML or a library's canvas: their element is checked, not their inside).
    Evaluated through the DevTools protocol, so the app's CSP does not have to allow it."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    return page.evaluate("""async ([tags, exclude]) => {
        const context = exclude.length ? {include: [document], exclude: exclude.map(s => [s])} : document;
        const result = await axe.run(context, {runOnly: {type: 'tag', values: tags},
                                               resultTypes: ['violations'], iframes: false});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                             nodes: v.nodes.map(n => n.target.join(' '))}));
    }""", [WCAG_21_AA, list(exclude)])


def describe(violations: list[dict]) -> str:
    return "; ".join(f"{v['id']} ({len(v['nodes'])}: {', '.join(v['nodes'][:3])})" for v in violations)


def settled(page) -> None:
    """Waits two frames: what the page's scripts do on a resize (ResizeObserver) is done."""
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def sideways(page) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits the window)."""
    return page.evaluate("Math.max(0, document.documentElement.scrollWidth - window.innerWidth)")


# The focus indicator of every control that takes focus: an outline of at least 2 px whose
# colour has 3:1 against what is behind the control (WCAG 2.4.7 and 1.4.11's 3:1 for it).
FOCUS_CHECK = """(skip) => {
  const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= .03928 ? c / 12.92 : ((c + .055) / 1.055) ** 2.4; };
                               return .2126 * f(r) + .7152 * f(g) + .0722 * f(b); };
  const rgba = text => { const m = text.match(/[\\d.]+/g) || [0, 0, 0, 0]; return m.map(Number).concat([1]).slice(0, 4); };
  const over = (top, under) => top.slice(0, 3).map((c, i) => c * top[3] + under[i] * (1 - top[3]));
  const behind = el => { const layers = [];
    for (let node = el.parentElement; node; node = node.parentElement) {
      const color = rgba(getComputedStyle(node).backgroundColor);
      if (color[3] > 0) { layers.push(color); if (color[3] >= 1) break; } }
    return layers.reverse().reduce((under, top) => over(top, under), [255, 255, 255]); };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + .05) / (y + .05); };
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex="-1"])';
  const found = [];
  for (const el of document.querySelectorAll(selector)) {
    if (el.disabled || el.closest(skip) || !el.getClientRects().length) continue;
    const box = el.getBoundingClientRect(); const style0 = getComputedStyle(el);
    if (style0.visibility === 'hidden' || box.width < 1 || box.height < 1) continue;
    el.focus({preventScroll: true});
    if (document.activeElement !== el) continue;
    const style = getComputedStyle(el);
    const width = parseFloat(style.outlineWidth) || 0;
    const color = rgba(style.outlineColor);
    const back = behind(el);
    const shown = style.outlineStyle !== 'none' && width >= 2;
    const contrast = shown ? ratio(over(color, back), back) : 0;
    if (contrast < 3) {
      const name = el.id ? '#' + el.id : el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
      found.push(`${name} "${(el.innerText || el.value || el.getAttribute('aria-label') || '').trim().slice(0, 30)}" ${contrast.toFixed(2)}:1`);
    }
  }
  if (document.activeElement) document.activeElement.blur();
  return found;
}"""

# Parts drawn by third-party widgets whose focus styles we do not own (see docs/accessibility.md).
THIRD_PARTY = ".gjs-editor, .CodeMirror, .swagger-ui, emoji-picker, .drawflow"


def weak_focus(page) -> list[str]:
    """Controls whose focus indicator is missing or under 3:1 against their background."""
    page.keyboard.press("Shift")          # keyboard modality: focus() then shows :focus-visible
    return page.evaluate(FOCUS_CHECK, THIRD_PARTY)


# Every chart on the page: its name and role, and whether its figures are in a table (its own
# toggle, or the page's table it names); a chart without data is a "no data" paragraph.
CHARTS = """() => Array.from(document.querySelectorAll('canvas[data-chart], .chart-empty'), el => {
  const after = (el.closest('.chart-box') || el).nextElementSibling;
  return {chart: el.dataset.chart, empty: el.matches('.chart-empty'), text: el.textContent.trim(),
          role: el.getAttribute('role') || '', name: el.getAttribute('aria-label') || '',
          table: el.dataset.table ? !!document.getElementById(el.dataset.table)
                                  : !!(after && after.matches('details.chart-table') && after.querySelector('tbody tr'))};
})"""


def charts(page) -> list[dict]:
    return page.evaluate(CHARTS)


# --- pages, found from the routes and the links -----------------------------------------------

@dataclass
class Pages:
    """The app's HTML pages: which GET routes exist and which the crawl reached."""

    app: object
    visited: dict[str, str] = field(default_factory=dict)      # endpoint -> URL checked
    not_html: set[str] = field(default_factory=set)

    def __post_init__(self):
        self.adapter = self.app.url_map.bind("localhost")

    def candidates(self) -> dict[str, str]:
        """endpoint -> rule of every GET route that may be a page."""
        return {rule.endpoint: rule.rule for rule in self.app.url_map.iter_rules()
                if "GET" in rule.methods and not NOT_PAGES.search(rule.rule)
                and rule.endpoint not in NOT_PAGE_ENDPOINTS}

    def endpoint(self, url: str) -> str | None:
        path = urlsplit(url).path
        if NOT_PAGES.search(path):
            return None
        try:
            endpoint, _ = self.adapter.match(path, method="GET")
        except Exception:  # noqa: BLE001 - not one of ours (404, redirect, method)
            return None
        return endpoint

    def permission(self, endpoint: str) -> str | None:
        return declared(self.app.view_functions[endpoint])

    def allowed(self, endpoint: str, permissions: set[str]) -> bool:
        needed = self.permission(endpoint)
        return needed in (PUBLIC, SIGNED_IN) or needed in permissions

    def missing(self) -> dict[str, str]:
        seen = set(self.visited) | self.not_html
        return {endpoint: rule for endpoint, rule in self.candidates().items() if endpoint not in seen}


def links(page, origin: str) -> list[str]:
    """Where the page leads: its links, its frames and its GET forms (their action alone)."""
    hrefs = page.evaluate("""() => [
        ...Array.from(document.querySelectorAll('a[href]'), e => e.href),
        ...Array.from(document.querySelectorAll('iframe[src]'), e => e.src),
        ...Array.from(document.querySelectorAll('form[action]'), e => e.method === 'get' ? e.action : '')]""")
    return [href.split("#")[0] for href in hrefs if href.startswith(origin + "/")]
