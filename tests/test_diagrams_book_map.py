"""The front page's map of the book: one card per part, its diagram and its chapter links."""

from __future__ import annotations

import base64
import re

import matplotlib.pyplot as plt
import pytest

from cnnbook.diagrams.book_map import Part, book_map_html
from cnnbook.diagrams.style import canvas, layer_box


def _figure(label: str):
    fig, ax = canvas(4, 2)
    layer_box(ax, (0.5, 0.5), 3, 1, label, role="conv")
    return fig


def test_one_card_per_part_with_its_diagram_and_links():
    parts = [
        Part("Part I", [("1. Why?", "chapters/01.html"), ("2. How?", "chapters/02.html")],
             _figure("conv"), "a conv box"),
        Part("Part <II>", [("7. LeNet", "chapters/07.html")], _figure("pool"), 'a "pool" box'),
    ]  # fmt: skip
    page = book_map_html(parts)
    assert page.count('class="cnnbook-part"') == 2
    assert re.findall(r'<a href="([^"]+)">', page) == [
        "chapters/01.html", "chapters/02.html", "chapters/07.html"
    ]  # fmt: skip
    assert "Part &lt;II&gt;" in page and 'alt="a &quot;pool&quot; box"' in page, "escaped"
    images = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    svgs = [base64.b64decode(i).decode() for i in images]
    assert [">conv<" in svgs[0], ">pool<" in svgs[1]] == [True, True], "each card its own figure"
    assert not any(plt.fignum_exists(p.figure.number) for p in parts), "closed once drawn"


@pytest.mark.parametrize(
    ("parts", "error", "match"),
    [
        ([], ValueError, "parts"),
        (["Part I"], TypeError, r"parts\[0\]"),
        ([Part("", [("a", "b")], None, "alt")], TypeError, r"figure"),
    ],
)
def test_bad_parts_are_named(parts, error, match):
    with pytest.raises(error, match=match):
        book_map_html(parts)


def test_a_part_needs_a_title_alt_text_and_chapters():
    for bad in (
        Part(" ", [("a", "b")], _figure("x"), "alt"),
        Part("t", [("a", "b")], _figure("x"), ""),
        Part("t", [], _figure("x"), "alt"),
    ):
        with pytest.raises(ValueError, match=r"parts\[0\]"):
            book_map_html([bad])
    plt.close("all")
