"""The visual language of every diagram: roles and colours, shapes, text, and showing.

Roles, not colours, are what a diagram asks for: ``layer_box(ax, ..., role="conv")``.
The palette is Okabe-Ito (safe for every common colour-vision deficiency), light fills
with dark outlines, so black text reads on every shape and the shapes still read when
printed in grey. Text is ``FONT_SIZE`` points on a figure at most ``MAX_WIDTH_IN`` inches
wide, which the book shows at the text column's width (688 px), so labels stay legible on
a phone.

Coordinates: every diagram draws on an Axes in its own data units, with equal aspect,
``y`` pointing up, and no axis lines (``canvas``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle

from cnnbook._checks import check_choice

__all__ = [
    "FONT_SIZE",
    "MAX_WIDTH_IN",
    "ROLES",
    "arrow",
    "canvas",
    "cell_grid",
    "cuboid",
    "diagram_texts",
    "fill",
    "layer_box",
    "show",
    "to_svg",
]

FONT_SIZE = 11
MAX_WIDTH_IN = 6.8

# role -> (fill, edge). Fills are Okabe-Ito hues lightened towards white; edges the hue.
ROLES: dict[str, tuple[str, str]] = {
    "input": ("#E8E8E8", "#555555"),  # data: images, tensors read from outside
    "tensor": ("#D4ECF9", "#0072B2"),  # an activation / feature map
    "conv": ("#CDE5F5", "#0072B2"),  # convolutions (blue)
    "pool": ("#D3F0E6", "#009E73"),  # pooling, down- and upsampling (green)
    "norm": ("#FBF7CC", "#9E8C00"),  # BatchNorm, LayerNorm (yellow)
    "act": ("#F9E3C2", "#E69F00"),  # ReLU, sigmoid, softmax (orange)
    "linear": ("#F2D9E8", "#CC79A7"),  # fully connected, embeddings (pink)
    "merge": ("#FFFFFF", "#333333"),  # add, concatenate, multiply
    "attention": ("#F6D2C0", "#D55E00"),  # attention, gates (vermillion)
    "output": ("#E8E8E8", "#000000"),  # scores, boxes, masks
    "highlight": ("#F6D2C0", "#D55E00"),  # what the text is about right now
    "muted": ("#F4F4F4", "#AAAAAA"),  # context the reader can ignore
}


def _role(role: str) -> tuple[str, str]:
    return ROLES[check_choice("role", role, tuple(ROLES))]


def fill(role: str) -> str:
    """The fill colour of ``role`` (for legends and shapes drawn by hand)."""
    return _role(role)[0]


def canvas(width: float, height: float, *, inches: float = MAX_WIDTH_IN) -> tuple[Figure, Axes]:
    """A figure whose Axes spans ``[0, width] x [0, height]`` data units, axes hidden.

    width, height: the drawing's extent in its own units (> 0); inches: the figure's
    width (at most ``MAX_WIDTH_IN``); its height follows the aspect ratio.
    """
    for name, value in (("width", width), ("height", height), ("inches", inches)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if inches > MAX_WIDTH_IN:
        raise ValueError(f"inches must be at most {MAX_WIDTH_IN} (the text column), got {inches}")
    fig = plt.figure(figsize=(inches, inches * height / width))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return fig, ax


def layer_box(
    ax: Axes,
    xy: tuple[float, float],
    width: float,
    height: float,
    text: str = "",
    *,
    role: str = "conv",
    fontsize: float = FONT_SIZE,
    rotate: bool = False,
) -> FancyBboxPatch:
    """A rounded box with its lower-left corner at ``xy`` and ``text`` centred in it."""
    face, edge = _role(role)
    box = FancyBboxPatch(
        xy,
        width,
        height,
        boxstyle="round,pad=0,rounding_size=" + str(0.12 * min(width, height)),
        facecolor=face,
        edgecolor=edge,
        linewidth=1.4,
    )
    ax.add_patch(box)
    if text:
        ax.text(
            xy[0] + width / 2,
            xy[1] + height / 2,
            text,
            ha="center",
            va="center",
            fontsize=fontsize,
            rotation=90 if rotate else 0,
        )
    return box


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    text: str = "",
    *,
    color: str = "#333333",
    style: str = "-|>",
    connection: str = "arc3",
    fontsize: float = FONT_SIZE - 1,
) -> FancyArrowPatch:
    """An arrow from ``start`` to ``end``, with ``text`` beside its midpoint if given.

    connection: a matplotlib connection style, e.g. ``"arc3,rad=0.3"`` for a curved
    skip connection or ``"angle,angleA=0,angleB=90"`` for a right angle.
    """
    patch = FancyArrowPatch(
        start,
        end,
        arrowstyle=style,
        mutation_scale=12,
        color=color,
        linewidth=1.3,
        connectionstyle=connection,
        shrinkA=0,
        shrinkB=0,
    )
    ax.add_patch(patch)
    if text:
        mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.annotate(
            text, mid, xytext=(4, 0), textcoords="offset points", fontsize=fontsize, va="center"
        )
    return patch


def cuboid(
    ax: Axes,
    xy: tuple[float, float],
    depth: float,
    height: float,
    width: float,
    *,
    role: str = "tensor",
    label: str = "",
    slant: float = 0.5,
    alpha: float = 1.0,
) -> None:
    """A tensor volume in oblique projection: front face ``depth x height``, receding ``width``.

    The front face's lower-left corner is at ``xy``; the third axis recedes up and to the
    right at 45 degrees, shortened by ``slant``. Used for (C, H, W) tensors drawn with C
    across (``depth``), H up and W receding, and for kernels (C_in, k, k).
    ``label`` goes under the front face.
    """
    face, edge = _role(role)
    x, y = xy
    dx = dy = slant * width / math.sqrt(2)
    front = [(x, y), (x + depth, y), (x + depth, y + height), (x, y + height)]
    top = [(x, y + height), (x + depth, y + height), (x + depth + dx, y + height + dy)]
    top.append((x + dx, y + height + dy))
    side = [(x + depth, y), (x + depth + dx, y + dy), (x + depth + dx, y + height + dy)]
    side.append((x + depth, y + height))
    shades = (face, _shade(face, 0.93), _shade(face, 0.85))
    for points, colour in zip((front, top, side), shades, strict=True):
        ax.add_patch(
            Polygon(points, closed=True, facecolor=colour, edgecolor=edge, lw=1.2, alpha=alpha)
        )
    if label:
        ax.text(
            x + depth / 2,
            y - 0.15 * max(height, 1),
            label,
            ha="center",
            va="top",
            fontsize=FONT_SIZE - 1,
        )


def _shade(colour: str, factor: float) -> str:
    from matplotlib.colors import to_hex, to_rgb

    return to_hex(tuple(factor * c for c in to_rgb(colour)))


def cell_grid(
    ax: Axes,
    xy: tuple[float, float],
    values: np.ndarray | Sequence[Sequence[float]] | tuple[int, int],
    *,
    cell: float = 1.0,
    role: str = "input",
    highlight: Sequence[tuple[int, int]] = (),
    highlight_role: str = "highlight",
    fmt: str = "{:g}",
    fontsize: float = FONT_SIZE - 1,
) -> None:
    """A grid of square cells, row 0 at the top, lower-left corner at ``xy``.

    values: a 2-D array whose numbers are written in the cells, or a ``(rows, cols)``
    shape for empty cells; highlight: ``(row, col)`` cells filled with ``highlight_role``.
    """
    if isinstance(values, tuple) and len(values) == 2 and all(isinstance(v, int) for v in values):
        rows, cols = values
        numbers = None
    else:
        numbers = np.asarray(values)
        if numbers.ndim != 2:
            raise ValueError(f"values must be 2-D or a (rows, cols) shape, got {numbers.shape}")
        rows, cols = numbers.shape
    marked = {tuple(int(v) for v in rc) for rc in highlight}
    x0, y0 = xy
    for r in range(rows):
        for c in range(cols):
            face, edge = _role(highlight_role if (r, c) in marked else role)
            bottom = y0 + (rows - 1 - r) * cell
            ax.add_patch(
                Rectangle(
                    (x0 + c * cell, bottom), cell, cell, facecolor=face, edgecolor=edge, lw=0.9
                )
            )
            if numbers is not None:
                ax.text(
                    x0 + (c + 0.5) * cell,
                    bottom + 0.5 * cell,
                    fmt.format(numbers[r, c]),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                )


def diagram_texts(fig: Figure) -> list[str]:
    """Every non-empty text drawn on ``fig``, in drawing order.

    Tests compare a diagram's labels with the code it shows.
    """
    from matplotlib.text import Text

    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def to_svg(fig: Figure) -> str:
    """``fig`` as SVG text, fonts kept as text (small, sharp, selectable); closes ``fig``."""
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cnnbook"}):
        fig.savefig(
            buffer, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None}
        )
    plt.close(fig)
    return buffer.getvalue()


def show(fig: Figure) -> None:
    """Display ``fig`` in the notebook as SVG (sharp at any zoom, light in the page).

    The cell's ``mystnb: image: alt`` metadata gives the published figure its alt text.
    """
    from IPython.display import SVG, display

    display(SVG(to_svg(fig)))
