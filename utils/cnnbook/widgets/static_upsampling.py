"""Static picture of the upsampling explorer's first state (see ``upsampling.py``).

For front ends that run no script (an untrusted notebook, a PDF): the input, the kernel,
the transposed convolution's output and overlap counts, and the overlap counts of resize +
conv, drawn with matplotlib's object API from the numbers the widget already computed.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from cnnbook.widgets.static import (
    LIGHT,
    TEXT,
    _canvas,
    _caption,
    _grid,
    format_number,
)

__all__ = ["COUNT_COLOURS", "GAP_COLOUR", "count_colour", "upsampling_figure"]

# Overlap counts from few (light) to many (dark), the same ramp as upsampling.js; a count
# of 0 (a hole no stamp reaches) is grey. Text on the three darkest is white.
COUNT_COLOURS = ("#fde725", "#b5de2b", "#6ece58", "#35b779", "#26828e", "#3b528b", "#482878")
GAP_COLOUR = "#d9d9d9"


def count_colour(count: int, largest: int) -> str:
    """Colour of one overlap count on a map whose largest count is ``largest``."""
    if count <= 0:
        return GAP_COLOUR
    if largest <= 1:
        return COUNT_COLOURS[0]
    step = round((count - 1) / (largest - 1) * (len(COUNT_COLOURS) - 1))
    return COUNT_COLOURS[step]


def _count_grid(ax, counts: list[list[int]], x0: float, y0: float, font: float) -> None:
    largest = max(max(row) for row in counts)
    faces = [[count_colour(v, largest) for v in row] for row in counts]
    _grid(ax, faces, x0, y0, None, font)
    for r, row in enumerate(counts):
        for c, v in enumerate(row):
            dark = faces[r][c] in COUNT_COLOURS[-3:]
            ax.text(
                x0 + c + 0.5,
                y0 + r + 0.5,
                str(v),
                ha="center",
                va="center",
                fontsize=font,
                color="white" if dark else TEXT,
            )


def upsampling_figure(data: dict) -> Figure:
    """The explorer's first choice with every stamp added.

    data: ``UpsamplingExplorer.data``; the choice shown is ``data["kernel_size"]``,
    ``data["stride"]``. Panels: input, kernel, transposed-conv output, its overlap counts,
    and the overlap counts of resize + conv.
    """
    k, s, d = data["kernel_size"], data["stride"], data["decimals"]
    config = data["configs"][f"k{k}s{s}"]
    image, kernel = data["image"], data["kernels"][str(k)]
    out, counts = config["out"], config["counts"]
    rc_counts = config["resize"]["counts"]
    (H, W), (oh, ow) = (len(image), len(image[0])), (len(out), len(out[0]))
    rh, rw = len(rc_counts), len(rc_counts[0])
    gap = 1.4
    width = W + k + 2 * ow + rw + 4 * gap
    height = max(H, oh, rh) + 3.0
    figure, ax, cell_pt = _canvas(width, height)
    font = min(9.0, cell_pt * 0.34)
    top = 1.2
    ax.text(0, 0.5, data["title"], fontsize=font * 1.2, weight="bold", va="center", color=TEXT)

    def numbers(rows: list[list[float]]) -> list[list[str]]:
        return [[format_number(v, d) for v in row] for row in rows]

    x = 0.0
    panels = [
        (numbers(image), [["white"] * W for _ in range(H)], f"input {H} \u00d7 {W}"),
        (numbers(kernel), [[LIGHT] * k for _ in range(k)], f"kernel {k} \u00d7 {k}"),
        (numbers(out), [["white"] * ow for _ in range(oh)], f"transposed conv, s = {s}"),
    ]
    for texts, faces, caption in panels:
        _grid(ax, faces, x, top, texts, font)
        _caption(ax, x + len(faces[0]) / 2, top + len(faces) + 0.2, caption, font)
        x += len(faces[0]) + gap
    _count_grid(ax, counts, x, top, font)
    _caption(ax, x + ow / 2, top + oh + 0.2, "stamps per pixel", font)
    x += ow + gap
    _count_grid(ax, rc_counts, x, top, font)
    _caption(ax, x + rw / 2, top + rh + 0.2, f"resize \u00d7{s} + conv: taps", font)
    return figure
