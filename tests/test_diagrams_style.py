"""The diagrams' shared visual language: canvas sizing, shapes, labels and SVG output."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from cnnbook.diagrams.style import (
    MAX_WIDTH_IN,
    ROLES,
    arrow,
    canvas,
    cell_grid,
    cuboid,
    diagram_texts,
    layer_box,
    to_svg,
)


def test_canvas_keeps_aspect_and_column_width():
    fig, ax = canvas(10, 4)
    width, height = fig.get_size_inches()
    assert width == MAX_WIDTH_IN and height == pytest.approx(MAX_WIDTH_IN * 0.4)
    assert ax.get_xlim() == (0, 10) and ax.get_ylim() == (0, 4)
    plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": 0, "height": 1}, ValueError, "width"),
        ({"width": 1, "height": float("nan")}, ValueError, "height"),
        ({"width": "1", "height": 1}, TypeError, "width"),
        ({"width": 1, "height": 1, "inches": 20}, ValueError, "inches"),
    ],
)
def test_canvas_rejects_bad_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        canvas(**kwargs)


def test_shapes_write_their_labels_in_order():
    fig, ax = canvas(12, 5)
    cuboid(ax, (0.5, 1), 1, 3, 3, label="3×32×32")
    layer_box(ax, (4, 1), 1, 3, "conv 3×3", role="conv")
    arrow(ax, (2, 2), (4, 2), "x")
    cell_grid(ax, (7, 1), [[1, 2], [3, 4]], highlight=[(0, 1)])
    cell_grid(ax, (10, 1), (2, 2))
    assert diagram_texts(fig) == ["3×32×32", "conv 3×3", "x", "1", "2", "3", "4"]
    plt.close(fig)


def test_unknown_role_is_named():
    fig, ax = canvas(2, 2)
    with pytest.raises(ValueError, match="role"):
        layer_box(ax, (0, 0), 1, 1, "?", role="sparkle")
    plt.close(fig)
    assert "conv" in ROLES


def test_svg_keeps_text_as_text_and_closes_the_figure():
    fig, ax = canvas(4, 2)
    layer_box(ax, (0.5, 0.5), 3, 1, "ReLU", role="act")
    svg = to_svg(fig)
    assert svg.lstrip().startswith("<?xml") and ">ReLU<" in svg
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(TypeError, match="fig"):
        to_svg("not a figure")
