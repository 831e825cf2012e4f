"""Static pictures of the kernel-free widgets' first state, for front ends that run no script.

JupyterLab and Notebook 7 strip ``<script>`` and ``<style>`` from the HTML outputs of an
untrusted notebook (every downloaded one), and a PDF cannot run a script at all. Each widget
therefore also carries a small PNG of what its script draws first; ``_html.render_widget``
puts it inside the "needs JavaScript" fallback and ``StaticFallback._repr_mimebundle_`` adds
it as ``image/png`` to the display bundle. The pictures are drawn with matplotlib's object
API (no pyplot: no global figure, no backend), from the numbers the widget already computed.

Every function returns a :class:`matplotlib.figure.Figure`; ``figure_png`` turns it into PNG
bytes. Grids are drawn in an axes whose data unit is one cell, y pointing down.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import PIL.Image
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "conv_arithmetic_figure",
    "field_box",
    "figure_png",
    "format_number",
    "receptive_field_figure",
    "sliding_kernel_figure",
]

# Okabe-Ito colours, as in the widgets' style sheets.
ORANGE = "#E69F00"
SKY = "#56B4E9"
PURPLE = "#440154"
PAD_GREY = "#e6e6e6"
UNUSED_GREY = "#bdbdbd"
LIGHT = "#fff2cc"
TEXT = "#222222"
MAX_WIDTH_IN = 8.0  # the picture stays readable in a notebook column and on a PDF page
DPI = 80


def format_number(value: float, decimals: int) -> str:
    """``value`` as the figure writes it: integers plainly, others with ``decimals`` digits."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.{decimals}f}"


def figure_png(figure: Figure, dpi: int = DPI, colors: int = 96) -> bytes:
    """PNG bytes of ``figure`` (tight bounding box), reduced to a palette of ``colors``.

    A grid of numbers is mostly anti-aliased text: a palette image is about a third of the
    full-colour one and looks the same.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    image = PIL.Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    small = io.BytesIO()
    image.quantize(colors=colors, dither=PIL.Image.Dither.NONE).save(small, "PNG", optimize=True)
    return small.getvalue()


def _canvas(width_cells: float, height_cells: float, max_cell_in: float = 0.34):
    """A figure and one axes spanning ``width_cells`` x ``height_cells`` cells, y down."""
    cell = min(max_cell_in, MAX_WIDTH_IN / width_cells)
    figure = Figure(figsize=(width_cells * cell, height_cells * cell))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.1, width_cells + 0.1)  # room for the outermost grid lines
    ax.set_ylim(height_cells + 0.1, -0.1)
    ax.set_axis_off()
    return figure, ax, cell * 72  # cell size in points, for font sizes


def _cell(ax, row: float, col: float, x0: float, y0: float, face: str, **kwargs) -> None:
    ax.add_patch(
        Rectangle((x0 + col, y0 + row), 1, 1, facecolor=face, edgecolor="#777777", lw=0.6, **kwargs)
    )


def _frame(ax, top: float, left: float, h: float, w: float, color: str, lw: float = 2.5) -> None:
    ax.add_patch(Rectangle((left, top), w, h, fill=False, edgecolor=color, lw=lw, zorder=5))


def _grid(ax, faces: list[list[str]], x0: float, y0: float, texts=None, font: float = 9) -> None:
    """Cells coloured by ``faces`` (rows of colours), with optional ``texts`` (rows of str)."""
    for r, row in enumerate(faces):
        for c, face in enumerate(row):
            _cell(ax, r, c, x0, y0, face)
            if texts is not None and texts[r][c]:
                ax.text(
                    x0 + c + 0.5,
                    y0 + r + 0.5,
                    texts[r][c],
                    ha="center",
                    va="center",
                    fontsize=font,
                    color=TEXT,
                )


def _caption(ax, x: float, y: float, text: str, font: float, **kwargs) -> None:
    ax.text(x, y, text, ha="center", va="top", fontsize=font, color=TEXT, **kwargs)


# ----------------------------------------------------------------------------- sliding kernel


def sliding_kernel_figure(data: dict) -> Figure:
    """The sliding-kernel widget at its first step: (padded) input with the first window,
    the kernel, and the output with only its first value written.

    data: ``SlidingKernel.data``; the initial (stride, padding) is ``data["stride"]``,
    ``data["padding"]``.
    """
    config = data["configs"][f"s{data['stride']}p{data['padding']}"]
    padded, output = np.array(config["padded"]), np.array(config["output"])
    kernel = np.array(data["kernel"])
    first = config["positions"][0]
    p, d = data["padding"], data["decimals"]
    (ph, pw), (kh, kw), (oh, ow) = padded.shape, kernel.shape, output.shape
    gap = 1.6
    width = pw + gap + kw + gap + ow
    height = max(ph, kh, oh) + 3.2
    figure, ax, cell_pt = _canvas(width, height)
    font = min(10.0, cell_pt * 0.36)
    top = 1.2
    ax.text(0, 0.5, data["title"], fontsize=font * 1.15, weight="bold", va="center", color=TEXT)

    def is_pad(r: int, c: int) -> bool:
        return r < p or c < p or r >= ph - p or c >= pw - p

    faces = [[PAD_GREY if is_pad(r, c) else "white" for c in range(pw)] for r in range(ph)]
    t, left = first["window"]
    for r in range(t, t + kh):
        for c in range(left, left + kw):
            faces[r][c] = LIGHT
    texts = [[format_number(v, d) for v in row] for row in padded]
    _grid(ax, faces, 0, top, texts, font)
    _frame(ax, top + t, left, kh, kw, ORANGE)
    where = f"padded to {ph} \u00d7 {pw}" if p else f"{ph} \u00d7 {pw}"
    _caption(ax, pw / 2, top + ph + 0.2, f"input, {where}", font)

    x = pw + gap
    _grid(
        ax,
        [[LIGHT] * kw for _ in range(kh)],
        x,
        top,
        [[format_number(v, d) for v in row] for row in kernel],
        font,
    )
    _frame(ax, top, x, kh, kw, ORANGE)
    _caption(ax, x + kw / 2, top + kh + 0.2, f"kernel {kh} \u00d7 {kw}", font)
    ax.text(x - gap / 2, top + kh / 2, "\u22c6", ha="center", va="center", fontsize=font * 1.6)

    x += kw + gap
    faces = [["white"] * ow for _ in range(oh)]
    faces[0][0] = ORANGE
    texts = [[""] * ow for _ in range(oh)]
    texts[0][0] = format_number(first["sum"] + data["bias"], d)
    _grid(ax, faces, x, top, texts, font)
    _caption(
        ax, x + ow / 2, top + oh + 0.2, f"output {oh} \u00d7 {ow}, stride {data['stride']}", font
    )
    ax.text(x - gap / 2, top + kh / 2, "=", ha="center", va="center", fontsize=font * 1.4)
    terms = " + ".join(format_number(v, d) for row in first["products"] for v in row)
    line = f"output (0, 0) = {terms} = {format_number(first['sum'], d)}"
    if len(line) > 110:
        line = f"output (0, 0) = sum of the {kh * kw} products = {format_number(first['sum'], d)}"
    ax.text(0, height - 0.6, line, fontsize=font, va="center", color=TEXT)
    return figure


# ----------------------------------------------------------------------------- conv arithmetic


def _taps(start: int, k: int, d: int) -> list[int]:
    return [start + a * d for a in range(k)]


def _reached(n: int, starts: list[int], k: int, d: int) -> list[bool]:
    hit = [False] * n
    for s in starts:
        for t in _taps(s, k, d):
            if t < n:
                hit[t] = True
    return hit


def conv_arithmetic_figure(
    config: dict[str, int], transposed: bool, size: int | None, reason: str | None, title: str
) -> Figure:
    """The conv-arithmetic explorer at its first configuration, kernel at its first position.

    config: input, kernel, stride, padding, dilation, output_padding; size: the output size
    (None: no output, then ``reason`` says why: a template of ``conv_arithmetic.REASONS``).
    """
    W, k, s, p, d = (config[n] for n in ("input", "kernel", "stride", "padding", "dilation"))
    op = config["output_padding"]
    eff = d * (k - 1) + 1
    valid = size is not None
    if not transposed:
        n_in = max(W + 2 * p, eff)
        n_out = size if valid else 0
    else:
        n_in = W
        extent = (W - 1) * s + eff
        n_out = max(extent, p + size) if valid else 0
    gap = 2.0
    width = max(n_in + gap + max(n_out, 1), 16)
    height = max(n_in, n_out) + 4.2
    figure, ax, cell_pt = _canvas(width, height, max_cell_in=0.3)
    font = min(10.0, max(cell_pt * 0.42, 7.5))
    top = 1.2
    ax.text(0, 0.5, title, fontsize=font * 1.15, weight="bold", va="center", color=TEXT)
    x_out = n_in + gap
    if not transposed:
        padded = W + 2 * p
        used = _reached(n_in, _taps(0, size, s), k, d) if valid else None
        faces = []
        for r in range(n_in):
            row = []
            for c in range(n_in):
                if r >= padded or c >= padded:
                    face = "white"
                elif r < p or c < p or r >= padded - p or c >= padded - p:
                    face = PAD_GREY
                else:
                    face = "#f7f7f7"
                if used and r < padded and c < padded and not (used[r] and used[c]):
                    face = UNUSED_GREY
                row.append(face)
            faces.append(row)
        for r in _taps(0, k, d) if valid else []:  # no output: the frame alone, in red
            for c in _taps(0, k, d):
                faces[r][c] = ORANGE
        _grid(ax, faces, 0, top)
        if p:
            _frame(ax, top + p, p, W, W, "#333333", lw=1.5)
        _frame(ax, top, 0, eff, eff, ORANGE if valid else "#d55e00")
        caption = f"input {W} \u00d7 {W}" + (f", padded to {padded} (p = {p})" if p else "")
        _caption(ax, n_in / 2, top + n_in + 0.2, caption, font)
        if valid:
            faces = [["white"] * size for _ in range(size)]
            faces[0][0] = ORANGE
            _grid(ax, faces, x_out, top)
            _caption(ax, x_out + size / 2, top + size + 0.2, f"output {size} \u00d7 {size}", font)
        formula = (
            f"W_out = \u230a(W \u2212 d(k \u2212 1) \u2212 1 + 2p) / s\u230b + 1 = "
            f"\u230a({W} \u2212 {d}\u00b7({k} \u2212 1) \u2212 1 + 2\u00b7{p}) / {s}\u230b + 1"
        )
    else:
        faces = [["#f7f7f7"] * W for _ in range(W)]
        faces[0][0] = ORANGE
        _grid(ax, faces, 0, top)
        _caption(ax, W / 2, top + W + 0.2, f"input {W} \u00d7 {W}", font)
        if valid:
            hit = _reached(n_out, _taps(0, W, s), k, d)
            taps = set(_taps(0, k, d))
            faces = []
            for r in range(n_out):
                row = []
                for c in range(n_out):
                    if not (p <= r < p + size and p <= c < p + size):
                        face = PAD_GREY
                    elif r >= extent - p or c >= extent - p:
                        face = LIGHT
                    elif not (hit[r] and hit[c]):
                        face = UNUSED_GREY
                    else:
                        face = "white"
                    row.append(ORANGE if r in taps and c in taps else face)
                faces.append(row)
            _grid(ax, faces, x_out, top)
            _frame(ax, top + p, x_out + p, size, size, "#333333", lw=1.5)
            caption = f"output {size} \u00d7 {size}"
            if n_out != size:
                caption = f"result {n_out} \u00d7 {n_out}; output = framed {size} \u00d7 {size}"
            _caption(ax, x_out + n_out / 2, top + n_out + 0.2, caption, font)
        formula = (
            f"W_out = (W \u2212 1)s \u2212 2p + d(k \u2212 1) + output_padding + 1 = "
            f"({W} \u2212 1)\u00b7{s} \u2212 2\u00b7{p} + {d}\u00b7({k} \u2212 1) + {op} + 1"
        )
    formula += f" = {size}" if valid else ": no output"
    ax.text(0, height - 1.7, formula, fontsize=font, va="center", color=TEXT)
    if not valid:
        values = {
            "eff": eff,
            "padded": W + 2 * p,
            "extent": (W - 1) * s + eff,
            "padding": p,
            "stride": s,
            "dilation": d,
            "output_padding": op,
        }
        text = (reason or "").format(**values)
        ax.text(0, height - 0.7, text, fontsize=font, va="center", color="#d55e00")
    return figure


# ----------------------------------------------------------------------------- receptive field


def field_box(rf: int, jump: int, start: float, unit: tuple[int, int], size: int) -> tuple:
    """(top, left, bottom, right) pixel rows/cols of a unit's field, clipped, inclusive."""
    half = (rf - 1) / 2
    top = round(start + unit[0] * jump - half)
    left = round(start + unit[1] * jump - half)
    return (
        max(top, 0),
        max(left, 0),
        min(top + rf - 1, size - 1),
        min(left + rf - 1, size - 1),
    )


def receptive_field_figure(widget: object) -> Figure:
    """The receptive-field explorer's first view: the photo with the centre unit's field.

    widget: a ``ReceptiveField``; its first stack (``layers``), the centre unit of that
    stack's output map, the unit's theoretical field (orange box) and, when the stack is a
    preset (it always is), its measured effective field in blue, as the script draws them.
    """
    photo, n = widget.photo, widget.size
    info = widget.stack_info(widget.layers)
    out, rf = info["out"], info["rf"]
    unit = (out // 2, out // 2)
    figure = Figure(figsize=(6.4, 3.7))
    figure.suptitle(widget.title, fontsize=10, weight="bold", x=0.02, ha="left", color=TEXT)
    ax_photo = figure.add_axes((0.02, 0.14, 0.44, 0.72))
    ax_photo.imshow(photo, interpolation="nearest")
    erf = next((p["erf"] for p in widget.data["presets"] if p["keys"] == list(widget.layers)), None)
    if erf is not None and out > 0:
        values = np.frombuffer(base64.b64decode(erf["map"]["b64"]), dtype=np.uint8)
        overlay = np.zeros((n, n, 4))
        overlay[..., :3] = (0.0, 190 / 255, 1.0)  # the script's sky blue
        top, left = erf["top"], erf["left"]
        alpha = 0.9 * values.reshape(erf["height"], erf["width"]) / 255
        overlay[top : top + erf["height"], left : left + erf["width"], 3] = alpha
        ax_photo.imshow(overlay, interpolation="nearest")
    ax_photo.set_axis_off()
    ax_photo.set_title(f"photo ({n} \u00d7 {n} pixels)", fontsize=9)
    ax_out = figure.add_axes((0.54, 0.14, 0.44, 0.72))
    ax_out.set_axis_off()
    if out < 1:
        figure.text(0.02, 0.04, "This stack has no output on this photo.", fontsize=9)
        return figure
    top, left, bottom, right = field_box(rf, info["jump"], info["start"], unit, n)
    ax_photo.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5),
            right - left + 1,
            bottom - top + 1,
            fill=False,
            edgecolor=ORANGE,
            lw=2.2,
        )
    )
    grid = np.zeros((out, out))
    grid[unit] = 1
    ax_out.imshow(grid, cmap="viridis", vmin=0, vmax=1.6, interpolation="nearest")
    if out <= 32:
        for t in np.arange(-0.5, out, 1.0):
            ax_out.axhline(t, color="white", lw=0.5)
            ax_out.axvline(t, color="white", lw=0.5)
    ax_out.set_title(f"output map ({out} \u00d7 {out} units)", fontsize=9)
    text = (
        f"Unit {unit} depends on photo rows {top}\u2013{bottom}, columns {left}\u2013{right}: "
        f"a {rf} \u00d7 {rf} field (orange)"
        + ("; blue: measured effective field." if erf is not None else ".")
    )
    figure.text(0.02, 0.03, text, fontsize=9, color=TEXT)
    return figure
