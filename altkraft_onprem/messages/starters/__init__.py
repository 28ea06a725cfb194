"""The starting layouts that ship with the product (inserted as built-in saved templates)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Starter:
    file: str
    name: str
    description: str
    subject: str
    preheader: str

    def html(self) -> str:
        return (HERE / self.file).read_text(encoding="utf-8")


STARTERS = (
    Starter("newsletter.html", "Newsletter — one column",
            "Logo, headline, article blocks with a button each, footer with unsubscribe.",
            "News from us, {{ subscriber.first_name | default('friend') }}",
            "What happened this month"),
    Starter("promotion.html", "Promotion — product grid",
            "Hero banner with a call to action and a two-column product grid that stacks on phones.",
            "{{ subscriber.first_name | default('Hello') }}, our sale has started",
            "Up to 30% off for subscribers"),
    Starter("announcement.html", "Announcement — plain",
            "A short personal letter: text, one link, signature. Looks like a normal e-mail.",
            "A quick note", ""),
)
