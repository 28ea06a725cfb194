"""Message rendering speed: the typical newsletter compiled once, then rendered (subject, HTML
and text version) for many subscribers on one core, against a bare str.format of the same
placeholders measured in the same run.

    .venv/bin/python bench/render.py [--count 100000] [--fixture PATH]

Rates are CPU time of this process (time.process_time), so that other work on a shared
machine does not count; wall-clock rates and the load average are printed alongside. The run
is timed in tenths and cyclic-GC collections are counted: a rate that falls from the first
tenth to the last, or collections growing with the count, would show memory or GC growth.
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from altkraft_onprem.messages.render import compile_version, inline_css  # noqa: E402
from altkraft_onprem.messages.textversion import text_template_from_html  # noqa: E402

DEFAULT_FIXTURE = ROOT / "tests" / "fixtures" / "newsletter.html"
TIERS = ("Gold", "Silver", "Bronze", None)
CITIES = ("Berlin", "Москва", "Oslo", "Lisboa", None)


def contexts(distinct: int = 1000) -> list[dict]:
    out = []
    for i in range(distinct):
        tier = TIERS[i % len(TIERS)]
        out.append({
            "subscriber": {"id": 100000 + i, "email": f"user{i}@example.com",
                           "first_name": f"Name{i}" if i % 7 else None, "last_name": f"Last{i}",
                           "city": CITIES[i % len(CITIES)], "created_at": "2024-03-01",
                           "language": "en", "timezone": "Europe/Berlin",
                           "custom": ({"loyalty_tier": tier, "bonus_points": i % 500} if tier else {})},
            "list": {"name": "Newsletter"},
            "campaign": {"name": "Winter sale", "subject": "Winter sale", "preheader": "Up to 40% off"},
            "unsubscribe_url": f"https://mail.example.com/p/u/{i}",
            "preferences_url": f"https://mail.example.com/p/pref/{i}",
            "view_in_browser_url": f"https://mail.example.com/p/v/{i}",
            "data": {},
        })
    return out


_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_BLOCK = re.compile(r"\{%.*?%\}", re.S)
_DEFAULT = re.compile(r"^(.*?)\s*\|\s*default\((.*)\)$")


def format_baseline(template: str) -> tuple[str, list[tuple[str, str]]]:
    """The same document as a str.format template: every {{ expr }} a numbered field (its
    dotted path and default kept for the lookup), block tags dropped, other braces doubled."""
    fields: list[tuple[str, str]] = []
    pieces, last = [], 0
    for match in _EXPR.finditer(template):
        pieces.append(_BLOCK.sub("", template[last:match.start()]).replace("{", "{{").replace("}", "}}"))
        expr = match.group(1)
        default = ""
        found = _DEFAULT.match(expr)
        if found:
            expr, default = found.group(1), found.group(2).strip("'\"")
        pieces.append("{" + str(len(fields)) + "}")
        fields.append((expr, default))
        last = match.end()
    pieces.append(_BLOCK.sub("", template[last:]).replace("{", "{{").replace("}", "}}"))
    return "".join(pieces), fields


def lookup(context: dict, path: str, default: str):
    value = context
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return default
    return value


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    args = parser.parse_args(argv)
    html = args.fixture.read_text(encoding="utf-8")
    version = {"id": None, "subject": "{{ subscriber.first_name | default('Friend') }}, winter sale 🎉",
               "preheader": "Up to 40% off", "html": html, "text": "", "text_follows_html": True}
    people = contexts()

    load_before = os.getloadavg()[0]
    started = time.process_time()
    compiled = compile_version(version, link_rewriter=lambda url, i: f"https://mail.example.com/t/c/{i:04d}AbCdEfGh")
    compile_seconds = time.process_time() - started
    compiled.render(people[1])
    gc.collect()        # collections counted below are the renders' own
    gc_before = sum(s["collections"] for s in gc.get_stats())

    tenth = max(args.count // 10, 1)
    tenth_rates: list[int] = []
    size = 0
    wall_started, started = time.perf_counter(), time.process_time()
    chunk_started = started
    for n in range(args.count):
        rendered = compiled.render(people[n % len(people)])
        size += len(rendered.html)
        if (n + 1) % tenth == 0:
            now = time.process_time()
            tenth_rates.append(round(tenth / max(now - chunk_started, 1e-9)))
            chunk_started = now
    ours = time.process_time() - started
    ours_wall = time.perf_counter() - wall_started
    collections = sum(s["collections"] for s in gc.get_stats()) - gc_before

    # Baseline: str.format over the same inlined document and text, same placeholders.
    inlined, _ = inline_css(html)
    html_fmt, html_fields = format_baseline(inlined)
    text_fmt, text_fields = format_baseline(text_template_from_html(inlined)[0])
    subject_fmt, subject_fields = format_baseline(version["subject"])
    # The values are looked up before the clock starts: the baseline is formatting alone.
    values = [([lookup(ctx, p, d) for p, d in subject_fields], [lookup(ctx, p, d) for p, d in html_fields],
               [lookup(ctx, p, d) for p, d in text_fields]) for ctx in people]
    started = time.process_time()
    for n in range(args.count):
        subject_values, html_values, text_values = values[n % len(values)]
        subject_fmt.format(*subject_values)
        html_fmt.format(*html_values)
        text_fmt.format(*text_values)
    baseline = time.process_time() - started

    result = {
        "benchmark": "render",
        "fixture": args.fixture.name,
        "fixture_bytes": len(html.encode()),
        "variables": len(html_fields),
        "links": len(compiled.links),
        "subscribers": args.count,
        "compile_ms": round(compile_seconds * 1000, 1),
        "renders_per_s": round(args.count / ours),
        "renders_per_s_wall": round(args.count / ours_wall),
        "renders_per_s_by_tenth": tenth_rates,
        "gc_collections": collections,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "avg_html_bytes": round(size / args.count),
        "text_from_template": not compiled._text_from_rendered_html,
        "str_format_per_s": round(args.count / baseline),
        "ratio_to_str_format": round(ours / baseline, 2),
        "goal_renders_per_s": 5000,
        "goal_met": args.count / ours >= 5000,
    }
    print(f"compiled in {result['compile_ms']} ms; {result['renders_per_s']} renders per CPU-second "
          f"(subject + HTML + text, {result['avg_html_bytes']} B HTML; by tenth "
          f"{min(tenth_rates)}..{max(tenth_rates)}; load {result['loadavg']}); str.format baseline "
          f"{result['str_format_per_s']}/s; ours takes {result['ratio_to_str_format']}× as long")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
