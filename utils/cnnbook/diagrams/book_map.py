"""The front page's map of the book: one card per part, with a diagram and its chapters.

``book_map_html(parts)`` turns a list of ``Part``s into one HTML fragment: a grid of cards
(laid out by the book's stylesheet, class ``cnnbook-map``), each with the part's title, a
diagram drawn by this package (embedded as an SVG image, so the ids inside one drawing
cannot clash with another's) and links to its chapters. The front page of the book builds
it from ``_toc.yml``, so the map always lists the chapters the book has.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import NamedTuple

from matplotlib.figure import Figure

from cnnbook.diagrams.style import to_svg

__all__ = ["Part", "book_map_html"]


class Part(NamedTuple):
    """One part of the book: its title, (chapter title, link) pairs, a diagram and its alt text."""

    title: str
    chapters: Sequence[tuple[str, str]]
    figure: Figure
    alt: str


def _check_part(i: int, part: object) -> Part:
    if not isinstance(part, Part):
        raise TypeError(f"parts[{i}] must be a Part, got {type(part).__name__}")
    if not isinstance(part.figure, Figure):
        raise TypeError(f"parts[{i}].figure must be a matplotlib Figure")
    for name in ("title", "alt"):
        value = getattr(part, name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"parts[{i}].{name} must be a non-empty string")
    if not part.chapters:
        raise ValueError(f"parts[{i}].chapters must list at least one chapter")
    return part


def book_map_html(parts: Sequence[Part]) -> str:
    """A ``<div class="cnnbook-map">`` with one card per part; closes each part's figure."""
    if isinstance(parts, (str, bytes)) or not isinstance(parts, Sequence) or not parts:
        raise ValueError("parts must be a non-empty sequence of Part")
    checked = [_check_part(i, part) for i, part in enumerate(parts)]
    cards = []
    for part in checked:
        svg = base64.b64encode(to_svg(part.figure).encode("utf-8")).decode("ascii")
        links = "".join(
            f'<li><a href="{html.escape(href, quote=True)}">{html.escape(title)}</a></li>'
            for title, href in part.chapters
        )
        cards.append(
            '<div class="cnnbook-part">'
            f'<img src="data:image/svg+xml;base64,{svg}" alt="{html.escape(part.alt, quote=True)}">'
            f"<h3>{html.escape(part.title)}</h3><ul>{links}</ul></div>"
        )
    return f'<div class="cnnbook-map">{"".join(cards)}</div>'
