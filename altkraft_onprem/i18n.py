"""Translations: the marker for strings translated where they are shown, and the catalogue
extraction that `make extract-messages` and the completeness test share.

UI strings go through Flask-Babel: `_()` (gettext) in requests, `lazy_gettext` / `_l` at import
time, and `N_()` for strings defined in data (a dict of descriptions, a tuple of titles) that a
view or template later passes to `_()`. The error classes of errors.py are keywords too: the
literal template of `NotFound("campaign %(campaign_id)s does not exist", ...)` is a msgid,
translated when the error is shown (`ServiceError.translated()`). Catalogues live in altkraft_onprem/translations/
(messages.pot + ru/LC_MESSAGES/messages.po; .mo files are compiled by `make translations`).
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
TRANSLATIONS = PACKAGE / "translations"
POT = TRANSLATIONS / "messages.pot"
BABEL_CFG = ROOT / "babel.cfg"
# Every ServiceError class: its first argument is the message template (tests/web/test_i18n.py
# fails on a class missing here and on a message that is not a literal).
# Every error class whose message is shown to people (errors.Translatable), with the position of
# its message template among the arguments (1 = first).
ERROR_KEYWORDS = {"ServiceError": 1, "NotFound": 1, "Conflict": 1, "Forbidden": 1,
                  "TooManyRequests": 1, "DataFetchError": 1, "ArchiveError": 1, "SheetError": 1,
                  "FieldError": 2, "Refused": 1, "Unreachable": 1}
# On top of Babel's defaults (_, gettext, ngettext, N_, ...), in pybabel's -k syntax; the
# Makefile's BABEL_KEYWORDS.
KEYWORDS = ("_l", "lazy_gettext",
            *(name if at == 1 else f"{name}:{at}" for name, at in ERROR_KEYWORDS.items()))


def N_(text: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Marks a string for extraction without translating it (translated where shown)."""
    return text


def extract(root: Path = ROOT):
    """The catalogue of every msgid in the code and templates, as `pybabel extract -F babel.cfg
    -k _l -k lazy_gettext` finds it (babel.messages.catalog.Catalog)."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with open(root / "babel.cfg", encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    keywords = dict(DEFAULT_KEYWORDS)
    for keyword in KEYWORDS:
        name, _, at = keyword.partition(":")
        keywords[name] = (int(at),) if at else None
    catalog = Catalog(project="ALTKRAFT On-Premise")

    def only_the_package(dirpath: str) -> bool:
        relative = Path(dirpath).relative_to(root).parts
        return not relative or (relative[0] == PACKAGE.name and "__pycache__" not in relative)

    for filename, lineno, message, comments, context in extract_from_dir(
            root, method_map, options_map, keywords=keywords, strip_comment_tags=True,
            directory_filter=only_the_package):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def compile_catalogues(translations: Path = TRANSLATIONS) -> list[Path]:
    """Compiles every messages.po whose .mo is missing or older (what `make translations`
    does with pybabel); returns the .mo files written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(translations.glob("*/LC_MESSAGES/messages.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with open(po, "rb") as handle:
            catalog = read_po(handle, locale=po.parent.parent.name)
        with open(mo, "wb") as handle:
            write_mo(handle, catalog)
        written.append(mo)
    return written
