"""Diagrams of upsampling (chapter 16): resizing versus a transposed convolution.

- ``upsampling``: a small input grown by nearest and bilinear resizing (top row, values
  from ``torch.nn.functional.interpolate``) and by a transposed convolution drawn as
  stamps (bottom row): each input value times the kernel, added into the output at
  stride ``s``, the overlaps summed. ``transposed_stamps`` computes the stamps; their sum
  is ``torch.nn.functional.conv_transpose2d``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnbook._checks import check_int
from cnnbook.diagrams.style import FONT_SIZE, ROLES, arrow, canvas, cell_grid

__all__ = ["transposed_stamps", "upsampling"]

_STAMP_ROLES = ("conv", "pool", "act", "linear", "norm", "attention", "tensor", "input", "muted")


def _small_matrix(name: str, value: object, largest: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a 2-D array of numbers, got {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 2-D array of numbers, got {value!r}") from None
    if array.ndim != 2 or min(array.shape) < 1 or max(array.shape) > largest:
        raise ValueError(
            f"{name} must be 2-D with 1 to {largest} rows and columns, got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers")
    return array


def transposed_stamps(
    x: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    kernel: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    stride: int,
) -> np.ndarray:
    """One stamp per input value. x: (h, w), kernel: (k_h, k_w) -> (h, w, H_out, W_out).

    Stamp (i, j) is ``x[i, j] * kernel`` written into a zero output at rows
    ``i * stride ...`` and columns ``j * stride ...``, with H_out = (h - 1) stride + k_h.
    Summed over (i, j) this is ``F.conv_transpose2d`` without padding.
    """
    x = _small_matrix("x", x, 4)
    kernel = _small_matrix("kernel", kernel, 5)
    s = check_int("stride", stride, minimum=1)
    h, w = x.shape
    kh, kw = kernel.shape
    stamps = np.zeros((h, w, (h - 1) * s + kh, (w - 1) * s + kw))
    for i in range(h):
        for j in range(w):
            stamps[i, j, i * s : i * s + kh, j * s : j * s + kw] = x[i, j] * kernel
    return stamps


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _grid(ax, xy, values, title, *, role="input", highlight=(), cell=1.0) -> None:
    cell_grid(
        ax,
        xy,
        values,
        role=role,
        highlight=highlight,
        fmt="{:.3g}",
        cell=cell,
        fontsize=FONT_SIZE - 2 - (cell > 1),
    )
    rows, cols = np.shape(values)
    ax.text(
        xy[0] + cols * cell / 2,
        xy[1] + rows * cell + 0.35,
        title,
        ha="center",
        va="bottom",
        fontsize=FONT_SIZE - 1,
    )


def upsampling(
    x: Sequence[Sequence[float]] | np.ndarray | torch.Tensor = ((1.0, 2.0), (3.0, 4.0)),
    kernel: Sequence[Sequence[float]] | np.ndarray | torch.Tensor | None = None,
    *,
    stride: int = 2,
) -> Figure:
    """Resize versus transposed convolution, on the same small input.

    x: (h, w) input, at most 3 x 3; kernel: (k, k) transposed-conv kernel, at most 4 x 4
    (default: a 3 x 3 kernel of ones); stride: the upsampling factor (1 to 3). Top:
    ``F.interpolate`` with ``mode="nearest"`` and ``"bilinear"`` (align_corners=False).
    Bottom: the input (each value in its own colour), the kernel, every stamp, and
    their sum with cells where stamps overlap highlighted.
    """
    x_np = _small_matrix("x", x, 3)
    k_np = _small_matrix("kernel", np.ones((3, 3)) if kernel is None else kernel, 4)
    s = check_int("stride", stride, minimum=1)
    if s > 3:
        raise ValueError(f"stride must be 1, 2 or 3 for a readable diagram, got {s}")
    h, w = x_np.shape
    kh, kw = k_np.shape
    stamps = transposed_stamps(x_np, k_np, s)  # (h, w, H_out, W_out)
    total = stamps.sum(axis=(0, 1))
    H_out, W_out = total.shape
    t = torch.from_numpy(x_np)[None, None]
    nearest = F.interpolate(t, scale_factor=s, mode="nearest")[0, 0].numpy()
    bilinear = F.interpolate(t, scale_factor=s, mode="bilinear", align_corners=False)[0, 0].numpy()
    gap = 1.6
    stamps_w = w * W_out + (w - 1) * 0.6
    width = w + gap + kw + gap + stamps_w + gap + W_out + 0.4
    stamps_h = h * H_out + (h - 1) * 1.4
    bottom_h = max(stamps_h, H_out, h) + 1.2
    big = 1.3  # resized grids: wider cells for values such as 1.25
    top_h = h * s * big + 1.6
    fig, ax = canvas(width, top_h + bottom_h + 0.6)
    # Top row: resizing repeats or blends values; nothing is learned.
    y_top = bottom_h + 0.6
    _grid(ax, (0, y_top + (h * s * big - h) / 2), x_np, "input x")
    x_near = w + gap + 0.6
    _grid(ax, (x_near, y_top), nearest, f"nearest ×{s}", role="pool", cell=big)
    x_bil = x_near + w * s * big + gap + 0.6
    _grid(ax, (x_bil, y_top), bilinear, f"bilinear ×{s}", role="pool", cell=big)
    mid = y_top + h * s * big / 2
    arrow(ax, (w + 0.15, mid), (x_near - 0.15, mid))
    arrow(ax, (x_near + w * s * big + 0.15, mid), (x_bil - 0.15, mid))
    ax.text(
        x_bil + w * s * big + gap,
        mid,
        "resize: fixed rule,\nno weights",
        va="center",
        fontsize=FONT_SIZE - 1,
    )
    # Bottom row: the transposed convolution as a sum of stamps.
    y0 = (bottom_h - 1.2 - stamps_h) / 2 + 0.2
    centre = y0 + stamps_h / 2
    roles = [_STAMP_ROLES[n % len(_STAMP_ROLES)] for n in range(h * w)]
    for i in range(h):  # the input, each value in the colour of its stamp
        for j in range(w):
            cell_grid(
                ax,
                (j, centre + h / 2 - 1 - i),
                [[x_np[i, j]]],
                role=roles[i * w + j],
                fmt="{:.3g}",
                fontsize=FONT_SIZE - 2,
            )
    ax.text(
        w / 2, centre + h / 2 + 0.35, "input x", ha="center", va="bottom", fontsize=FONT_SIZE - 1
    )
    x_k = w + gap
    _grid(ax, (x_k, centre - kh / 2), k_np, "kernel", role="conv")
    x_st = x_k + kw + gap
    for i in range(h):
        for j in range(w):
            sx, sy = x_st + j * (W_out + 0.6), y0 + (h - 1 - i) * (H_out + 1.4)
            covered = np.zeros((H_out, W_out), dtype=bool)
            covered[i * s : i * s + kh, j * s : j * s + kw] = True
            cell_grid(ax, (sx, sy), (H_out, W_out), role="muted")
            face, edge = ROLES[roles[i * w + j]]
            for r, c in zip(*np.nonzero(covered), strict=True):
                ax.add_patch(
                    Rectangle(
                        (sx + c, sy + H_out - 1 - r), 1, 1, facecolor=face, edgecolor=edge, lw=0.9
                    )
                )
                ax.text(
                    sx + c + 0.5,
                    sy + H_out - 0.5 - r,
                    _fmt(stamps[i, j, r, c]),
                    ha="center",
                    va="center",
                    fontsize=FONT_SIZE - 2,
                )
            ax.text(
                sx + W_out / 2,
                sy + H_out + 0.3,
                f"x[{i},{j}] · kernel",
                ha="center",
                va="bottom",
                fontsize=FONT_SIZE - 2,
            )
    x_sum = x_st + stamps_w + gap
    overlap = transposed_stamps(np.ones((h, w)), np.ones((kh, kw)), s).sum(axis=(0, 1)) > 1
    _grid(
        ax,
        (x_sum, centre - H_out / 2),
        total,
        "sum of stamps",
        highlight=list(zip(*np.nonzero(overlap), strict=True)),
    )
    arrow(ax, (w + 0.15, centre), (x_k - 0.15, centre))
    arrow(ax, (x_k + kw + 0.15, centre), (x_st - 0.15, centre))
    arrow(ax, (x_st + stamps_w + 0.15, centre), (x_sum - 0.15, centre))
    ax.text(
        x_sum + W_out / 2,
        centre - H_out / 2 - 0.3,
        f"stride {s}: {H_out}×{W_out}",
        ha="center",
        va="top",
        fontsize=FONT_SIZE - 1,
    )
    ax.set_ylim(-0.6, top_h + bottom_h + 0.6)
    return fig
