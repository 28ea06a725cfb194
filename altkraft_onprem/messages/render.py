"""Rendering a message version: compiled once (sandboxed Jinja, CSS inlined, links rewritten,
text version derived), cached, then rendered per subscriber.

    compiled = compile_version(version_row, link_rewriter=rewrite)   # once per campaign variant
    compiled.links                                                    # [(index, original_url)]
    rendered = compiled.render(context)                               # per subscriber
"""
from __future__ import annotations

import hashlib
import html as htmllib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import css_inline
from jinja2 import Template, TemplateSyntaxError, meta, nodes

from . import sandbox
from .sandbox import MessageEnvironment
from .textversion import html_to_text, map_line, protect, restore, text_template_from_html

LinkRewriter = Callable[[str, int], str]
CONTEXT_NAMES = ("subscriber", "list", "campaign", "unsubscribe_url", "preferences_url",
                 "view_in_browser_url", "data", "event")
CACHE_SIZE = 128

_html_env = MessageEnvironment(autoescape=True)
_text_env = MessageEnvironment(autoescape=False)
_inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False,
                                 keep_link_tags=True)
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_URL_IN_TEXT = re.compile(r"https?://[^\s\]\)>\"']+")
_BODY = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CONTENT = re.compile(r"<body\b[^>]*>(.*)</body>", re.I | re.S)


class TemplateProblem(Exception):
    """A template error for people: the line in the part they wrote, and what is wrong."""

    def __init__(self, line: int | None, message: str, part: str = "html"):
        super().__init__(f"{part} line {line}: {message}" if line else f"{part}: {message}")
        self.line = line
        self.message = message
        self.part = part

    def as_dict(self) -> dict:
        return {"part": self.part, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass
class _Part:
    name: str
    template: Template | None
    line_map: list[tuple[int, int]] = field(default_factory=list)
    # Without loops or macros the output cannot outgrow its values: no need to count it.
    bounded: bool = False
    # (line, name) -> the dotted variable it ends, to name a missing value ("data.promo").
    paths: dict[tuple[int, str], str] = field(default_factory=dict)


def _parse(env: MessageEnvironment, source: str, part: str) -> nodes.Template:
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.lineno, exc.message or "syntax error", part) from None


def _compile(env: MessageEnvironment, source: str, part: str,
             line_map: list[tuple[int, int]] | None = None) -> _Part:
    try:
        tree = env.parse(source)
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        line = map_line(line_map, exc.lineno) if line_map else exc.lineno
        raise TemplateProblem(line, exc.message or "syntax error", part) from None
    bounded = tree.find(nodes.For) is None and tree.find(nodes.Macro) is None \
        and tree.find(nodes.CallBlock) is None
    return _Part(part, template, line_map or [], bounded, _variable_paths(tree))


def _dotted(node: nodes.Node) -> str | None:
    """`data.offer['code']` -> "data.offer.code"; None for anything but names and keys."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return None if base is None else f"{base}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base = _dotted(node.node)
        return None if base is None else f"{base}.{node.arg.value}"
    return None


def _variable_paths(tree: nodes.Template) -> dict[tuple[int, str], str]:
    paths = {}
    for node in tree.find_all((nodes.Name, nodes.Getattr, nodes.Getitem)):
        path = _dotted(node)
        if path is not None:
            paths.setdefault((node.lineno, path.rpartition(".")[2]), path)
    return paths


def unknown_names(env: MessageEnvironment, tree: nodes.Template, part: str) -> list[TemplateProblem]:
    problems = []
    names = meta.find_undeclared_variables(tree) - set(CONTEXT_NAMES) - set(env.globals)
    for name in sorted(names):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), None)
        problems.append(TemplateProblem(line, f"unknown variable '{name}' (known: "
                                              f"{', '.join(CONTEXT_NAMES)})", part))
    return problems


def check_version(version: dict[str, Any]) -> list[TemplateProblem]:
    """Every syntax error and unknown top-level variable, with lines, for the editor."""
    problems: list[TemplateProblem] = []
    parts = [("subject", _text_env, version.get("subject") or ""),
             ("preheader", _text_env, version.get("preheader") or ""),
             ("html", _html_env, version.get("html") or "")]
    if not version.get("text_follows_html", True):
        parts.append(("text", _text_env, version.get("text") or ""))
    for part, env, source in parts:
        try:
            tree = _parse(env, source, part)
        except TemplateProblem as problem:
            problems.append(problem)
            continue
        problems.extend(unknown_names(env, tree, part))
    return problems


def inline_css(template: str) -> tuple[str, list[tuple[int, int]]]:
    """CSS from <style> into style attributes, @media rules kept in the head; Jinja tags kept.
    Returns the template and its line map (falls back to the source if tags cannot be kept)."""
    protected, tokens = protect(template, comments=True)
    fragment = _BODY.search(protected) is None
    if fragment:
        # A fragment stays one: parsed inside a body of our own, which is taken off again.
        protected = f"<html><head></head><body>{protected}</body></html>"
    try:
        inlined = _inliner.inline(protected)
    except Exception:  # noqa: BLE001 - un-inlined CSS is still a working message
        return template, []
    if fragment:
        match = _BODY_CONTENT.search(inlined)
        if match is None:
            return template, []
        inlined = match.group(1)
    restored = restore(inlined, tokens)
    if restored is None:
        return template, []
    return restored


def _rewrite_links(template: str, rewriter: LinkRewriter | None) -> tuple[str, list[tuple[int, str]]]:
    links: list[tuple[int, str]] = []

    def replace(match: re.Match) -> str:
        value = match.group(3)
        if "{{" in value or "{%" in value:
            return match.group(0)
        url = htmllib.unescape(value).strip()
        if not url.lower().startswith(("http://", "https://")):
            return match.group(0)
        index = len(links)
        links.append((index, url))
        if rewriter is None:
            return match.group(0)
        return match.group(1) + match.group(2) + _literal(rewriter(url, index), html=True) + match.group(2)

    return _HREF.sub(replace, template), links


def _literal(text: str, *, html: bool) -> str:
    """A URL placed in template source: escaped for HTML and shielded from Jinja."""
    text = htmllib.escape(text, quote=True) if html else text
    if "{" in text or "%}" in text:
        return "{% raw %}" + text + "{% endraw %}"
    return text


def _rewrite_text_links(text: str, links: list[tuple[int, str]], rewriter: LinkRewriter | None) -> str:
    if rewriter is None or not links:
        return text
    first_index = {}
    for index, url in links:
        first_index.setdefault(url, index)

    def replace(match: re.Match) -> str:
        url = match.group(0)
        index = first_index.get(url)
        return match.group(0) if index is None else _literal(rewriter(url, index), html=False)
    return _URL_IN_TEXT.sub(replace, text)


def _preheader_block(html: str, preheader: str) -> str:
    """Mail clients show the first text of the body next to the subject: put the preheader
    there unless the template already prints it."""
    if not preheader.strip() or "campaign.preheader" in html:
        return html
    block = ('<div style="display:none;max-height:0;overflow:hidden;mso-hide:all;">'
             "{{ campaign.preheader }}</div>")
    match = _BODY.search(html)
    if match is None:
        return block + html
    return html[:match.end()] + block + html[match.end():]


class CompiledMessage:
    """One version, ready to render many times. Thread-safe; keeps no per-render state."""

    def __init__(self, version: dict[str, Any], link_rewriter: LinkRewriter | None = None):
        self.version_id = version.get("id")
        subject_source = version.get("subject") or ""
        preheader_source = version.get("preheader") or ""
        html_source = version.get("html") or ""
        self._subject = _compile(_text_env, subject_source, "subject")
        self._preheader = _compile(_text_env, preheader_source, "preheader")
        _parse(_html_env, html_source, "html")           # syntax errors on the lines written

        inlined, html_map = inline_css(html_source)
        final_html, self.links = _rewrite_links(inlined, link_rewriter)
        self._html = _compile(_html_env, _preheader_block(final_html, preheader_source), "html",
                              html_map)

        self._text: _Part | None = None
        if version.get("text_follows_html", True):
            derived = text_template_from_html(final_html)
            if derived is not None:
                text_source, text_map = derived
                # lines of the derived text -> lines of final_html -> lines the user wrote
                text_map = [(t, map_line(html_map, h) if html_map else h) for t, h in text_map]
                try:
                    self._text = _compile(_text_env, text_source, "text", text_map)
                except TemplateProblem:
                    self._text = None           # render-time conversion below instead
        else:
            text_source = _rewrite_text_links(version.get("text") or "", self.links, link_rewriter)
            self._text = _compile(_text_env, text_source, "text")
        self._text_from_rendered_html = self._text is None

    def render(self, context: dict[str, Any]) -> Rendered:
        """Render for one recipient; TemplateProblem when it cannot be rendered whole (a
        variable without a value and without a default among them)."""
        budget = sandbox.steps_budget().set([sandbox.MAX_STEPS])
        try:
            # One merged namespace for every part (Jinja would copy it once per part).
            context = {**_html_env.globals, **context}
            subject = " ".join(self._run(self._subject, context).split())
            campaign = context.get("campaign")
            if not isinstance(campaign, dict) or "subject" not in campaign:
                campaign = dict(campaign or {})
                campaign.setdefault("subject", subject)
                campaign.setdefault("preheader", self._run(self._preheader, context))
                context["campaign"] = campaign
            html = self._run(self._html, context)
            if self._text_from_rendered_html:
                text = html_to_text(html)
            else:
                text = self._run(self._text, context)
            return Rendered(subject, html, text)
        finally:
            sandbox.steps_budget().reset(budget)

    def _run(self, part: _Part, context: dict[str, Any]) -> str:
        template = part.template
        try:
            chunks = template.root_render_func(template.new_context(context, shared=True))
            if part.bounded:
                return "".join(chunks)
            out = []
            total = 0
            for chunk in chunks:
                total += len(chunk)
                if total > sandbox.MAX_OUTPUT:
                    raise sandbox.LimitExceeded(
                        f"the {part.name} grew over {sandbox.MAX_OUTPUT} characters")
                out.append(chunk)
            return "".join(out)
        except RecursionError:
            raise TemplateProblem(None, "the template calls itself too deeply", part.name) from None
        except Exception as exc:  # noqa: BLE001 - any template failure becomes a problem report
            raise _problem(exc, part, template) from None


def _problem(exc: Exception, part: _Part, template: Template) -> TemplateProblem:
    template_line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            template_line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    line = template_line
    if line is not None and part.line_map:
        line = map_line(part.line_map, line)
    if isinstance(exc, sandbox.LimitExceeded):
        message = str(exc)
    elif isinstance(exc, sandbox.SecurityError):
        message = f"not allowed: {exc}"
    elif isinstance(exc, sandbox.UndefinedError):
        missing = getattr(exc, "missing_name", None)
        path = part.paths.get((template_line, str(missing))) if missing is not None else None
        if path is None:
            message = f"{exc} (add a default: {{{{ value | default('…') }}}})"
        else:
            message = f"{path} has no value (add a default: {{{{ {path} | default('…') }}}})"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TemplateProblem(line, message, part.name)


# --- compile cache ---------------------------------------------------------------------------

_cache: OrderedDict[tuple, CompiledMessage] = OrderedDict()
_cache_lock = threading.Lock()


def _key(version: dict[str, Any], link_rewriter: LinkRewriter | None) -> tuple:
    digest = hashlib.sha256()
    for name in ("subject", "preheader", "html", "text"):
        digest.update((version.get(name) or "").encode())
        digest.update(b"\0")
    return (version.get("id"), bool(version.get("text_follows_html", True)), digest.hexdigest(),
            link_rewriter)


def compile_version(version: dict[str, Any], *, link_rewriter: LinkRewriter | None = None) -> CompiledMessage:
    """Compiled once per version content (and rewriter), kept in an LRU cache."""
    key = _key(version, link_rewriter)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    compiled = CompiledMessage(version, link_rewriter)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def text_from_html_template(html: str) -> str:
    """The "generate text version" button: text from the HTML template, variables kept."""
    derived = text_template_from_html(html)
    if derived is not None:
        return derived[0]
    return html_to_text(html)
