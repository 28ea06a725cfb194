"""Plain-text versions from HTML, and keeping Jinja tags intact while HTML tools work on a
template (CSS inlining, text conversion): tags are swapped for inert tokens and put back."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import html2text

_JINJA = re.compile(
    r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}"    # a raw block stays one piece
    r"|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_LINK = re.compile(r"\[([^\[\]]*)\]\(<([^<>]*)>(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$", re.M)
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>|])")
_CODE = re.compile(r"`([^`\n]*)`")
_RAW_TEXT = ("style", "title", "script", "textarea")


@dataclass(frozen=True)
class Token:
    placeholder: str      # what stands in the protected text
    original: str         # the Jinja tag
    line: int             # its line in the source
    is_block: bool        # {% … %}: losing one would unbalance the template


def protect(source: str, *, comments: bool) -> tuple[str, list[Token]]:
    """Replace Jinja tags by tokens. With `comments`, block tags between elements become HTML
    comments so that an HTML parser keeps them in place (text in a <table> would move)."""
    nonce = secrets.token_hex(3)
    tokens: list[Token] = []
    out: list[str] = []
    last = 0
    for match in _JINJA.finditer(source):
        out.append(source[last:match.start()])
        word = f"zq{nonce}x{len(tokens)}x"
        original = match.group(0)
        is_block = original.startswith(("{%", "{#"))
        placeholder = word
        if comments and is_block and not _inside_markup("".join(out[-50:])):
            placeholder = f"<!--{word}-->"
        tokens.append(Token(placeholder, original, source.count("\n", 0, match.start()) + 1, is_block))
        out.append(placeholder)
        last = match.end()
    out.append(source[last:])
    return "".join(out), tokens


def _inside_markup(before: str) -> bool:
    """Is the end of `before` inside a tag or a raw-text element such as <style>?"""
    if before.rfind("<") > before.rfind(">"):
        return True
    lower = before.lower()
    for name in _RAW_TEXT:
        if lower.rfind(f"<{name}") > lower.rfind(f"</{name}"):
            return True
    return False


def restore(text: str, tokens: list[Token]) -> tuple[str, list[tuple[int, int]]] | None:
    """Put the tags back: (template, [(line in result, line in source)]), or None when a block
    tag was lost or duplicated on the way (the caller then falls back)."""
    if not tokens:
        return text, []
    by_word = {t.placeholder.strip("<!->"): t for t in tokens}
    nonce = tokens[0].placeholder.strip("<!->").split("x")[0]
    pattern = re.compile(rf"(?:<!--)?({re.escape(nonce)}x\d+x)(?:-->)?")
    seen: dict[str, int] = {}
    pieces: list[str] = []
    line_map: list[tuple[int, int]] = []
    last = 0
    line = 1
    for match in pattern.finditer(text):
        chunk = text[last:match.start()]
        pieces.append(chunk)
        line += chunk.count("\n")
        token = by_word.get(match.group(1))
        if token is None:
            return None
        seen[match.group(1)] = seen.get(match.group(1), 0) + 1
        pieces.append(token.original)
        line_map.append((line, token.line))
        line += token.original.count("\n")
        last = match.end()
    pieces.append(text[last:])
    for word, token in by_word.items():
        if token.is_block and seen.get(word, 0) != 1:
            return None
    return "".join(pieces), line_map


def map_line(line_map: list[tuple[int, int]], line: int) -> int:
    """A line of a transformed template -> the line of the source it came from."""
    best = None
    for result_line, source_line in line_map:
        if result_line > line:
            break
        best = source_line if result_line <= line else best
    return best if best is not None else line


def _converter() -> html2text.HTML2Text:
    h = html2text.HTML2Text()
    h.body_width = 0
    h.ignore_emphasis = True
    h.ignore_images = False
    h.images_to_alt = True
    h.ignore_tables = True
    h.protect_links = True
    h.inline_links = True
    h.skip_internal_links = True
    h.unicode_snob = True
    h.ul_item_mark = "-"
    return h


def _link(match: re.Match) -> str:
    text, url = match.group(1).strip(), match.group(2).strip()
    if not url:
        return text
    if not text or text == url:
        return url
    return f"{text} [{url}]"


def _heading(match: re.Match) -> str:
    text = match.group(2).strip()
    rule = "=" if len(match.group(1)) == 1 else "-"
    return f"{text}\n{rule * min(max(len(text), 3), 70)}"


def html_to_text(html: str) -> str:
    """Readable plain text: links as `text [url]`, headings underlined, lists with dashes."""
    text = _converter().handle(html)
    text = _LINK.sub(_link, text)
    text = _HEADING.sub(_heading, text)
    text = _CODE.sub(r"\1", text)
    text = _ESCAPE.sub(r"\1", text)
    lines = [line.rstrip() for line in text.splitlines()]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def text_template_from_html(template: str) -> tuple[str, list[tuple[int, int]]] | None:
    """The text version of an HTML *template*, its Jinja tags kept: converted once per
    version, then rendered per subscriber. None when the tags cannot be kept balanced."""
    protected, tokens = protect(template, comments=False)
    return restore(html_to_text(protected), tokens)
