"""Diagrams of what training computes: pooling and its gradient, a convolution's backward
pass, and the axes a normalisation layer averages over.

Chapters: 5 (``pooling_routes``), 6 (``conv_backward``) and 8 (``norm_axes``).

The numbers are computed, not typed: pooling and its gradient by ``torch``
(``F.max_pool2d``, ``F.avg_pool2d`` and autograd), the convolution's gradients by
``cnnbook.numpy_grad.conv2d_backward``, and the normalisation shapes from real
``nn.BatchNorm2d``, ``nn.LayerNorm`` and ``nn.GroupNorm`` modules and a forward pass.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from cnnbook._checks import check_array, check_int
from cnnbook.diagrams.style import FONT_SIZE, arrow, canvas, cell_grid, cuboid
from cnnbook.numpy_grad import conv2d_backward, conv2d_forward

__all__ = ["conv_backward", "norm_axes", "pooling_routes"]

_SMALL = FONT_SIZE - 1


def _caption(ax: Axes, x: float, y: float, text: str) -> None:
    ax.text(x, y, text, ha="center", va="center", fontsize=_SMALL)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(v)) for v in shape)


def _grid_input(name: str, value: object, limit: int) -> np.ndarray:
    """A 2-D real array of at most ``limit`` x ``limit`` values, as float64."""
    arr = check_array(name, value, ndim=2)
    if min(arr.shape) < 1 or max(arr.shape) > limit:
        raise ValueError(
            f"{name} must be between 1×1 and {limit}×{limit} to be drawn, got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must hold finite numbers")
    return arr.astype(np.float64)


# ----------------------------------------------------------------------------- chapter 5


def pooling_routes(
    x: np.ndarray, kernel_size: int = 2, upstream: np.ndarray | None = None
) -> Figure:
    """Max and average pooling of a small map, and where max pooling sends the gradient.

    x: (H, W), at most 6 × 6; kernel_size: the window (stride = window, no padding);
    upstream: dL/dy, (H_out, W_out), default 1, 2, 3, ... Top row: the input with the
    first window marked and each window's maximum highlighted, its max-pooled and
    average-pooled outputs. Bottom row: dL/dy, and dL/dx through max pooling: every
    window's gradient lands on its winner, all else is 0. The numbers are
    ``F.max_pool2d``, ``F.avg_pool2d`` and autograd's gradient on these arrays.
    """
    arr = _grid_input("x", x, 6)
    k = check_int("kernel_size", kernel_size, minimum=1)
    if k > min(arr.shape):
        raise ValueError(f"kernel_size ({k}) must fit in x {arr.shape}")
    leaf = torch.from_numpy(arr)[None, None].requires_grad_()
    y_max = F.max_pool2d(leaf, k)
    y_avg = F.avg_pool2d(leaf.detach(), k)[0, 0].numpy()
    out_shape = tuple(y_max.shape[2:])
    if upstream is None:
        g = np.arange(1.0, 1 + math.prod(out_shape)).reshape(out_shape)
    else:
        g = _grid_input("upstream", upstream, 6)
        if g.shape != out_shape:
            raise ValueError(f"upstream must have the output's shape {out_shape}, got {g.shape}")
    y_max.backward(torch.from_numpy(g)[None, None])
    dx = leaf.grad[0, 0].numpy()
    y_max = y_max.detach()[0, 0].numpy()
    H, W = arr.shape
    h2, w2 = out_shape
    winners = _winners(arr, k, out_shape)
    gap = 1.6
    x_max = W + gap + 0.4
    x_avg = x_max + w2 + gap
    width = max(x_avg + w2, W + gap + W) + 0.8
    fig, ax = canvas(width, 2 * H + 3.4)
    top = H + 2.4
    cell_grid(ax, (0.4, top), arr, role="input", highlight=winners)
    _outline(ax, 0.4, top + H - k, k)
    _caption(ax, 0.4 + W / 2, top + H + 0.4, f"x {_shape_text(arr.shape)}")
    cell_grid(ax, (x_max, top + H - h2), y_max, role="tensor", highlight=[(0, 0)])
    _caption(ax, x_max + w2 / 2, top + H + 0.4, f"max pool {k}×{k}")
    cell_grid(ax, (x_avg, top + H - h2), y_avg, role="tensor", fmt="{:.3g}")
    _caption(ax, x_avg + w2 / 2, top + H + 0.4, f"avg pool {k}×{k}")
    arrow(ax, (W + 0.55, top + H - 0.5), (x_max - 0.15, top + H - 0.5))
    cell_grid(ax, (0.4, 1.0 + H - h2), g, role="tensor")
    _caption(ax, 0.4 + w2 / 2, 1.0 + H + 0.4, "dL/dy")
    x_dx = max(w2 + gap + 0.4, x_max)
    arrow(ax, (w2 + 0.55, 1.0 + H - 0.5), (x_dx - 0.15, 1.0 + H - 0.5))
    _caption(ax, (w2 + 0.55 + x_dx) / 2, 1.0 + H - 0.1, "to each max")
    cell_grid(ax, (x_dx, 1.0), dx, role="input", highlight=winners)
    _caption(ax, x_dx + W / 2, 0.5, "dL/dx through max pooling")
    return fig


def _winners(arr: np.ndarray, k: int, out_shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(row, col) of each window's maximum, as torch picks it (the first maximum)."""
    _, idx = F.max_pool2d(torch.from_numpy(arr)[None, None], k, return_indices=True)
    W = arr.shape[1]
    assert idx.shape[2:] == out_shape
    return [(int(i) // W, int(i) % W) for i in idx.flatten()]


def _outline(ax: Axes, x: float, y: float, size: float) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x, y), size, size, fill=False, edgecolor="#D55E00", lw=2.2))


# ----------------------------------------------------------------------------- chapter 6


def conv_backward(x: np.ndarray, weight: np.ndarray, upstream: np.ndarray) -> Figure:
    """Both gradients of a stride-1 convolution y = corr(x, w) as pictures with numbers.

    x: (H, W), at most 6 × 6; weight: (k, k); upstream: dL/dy, (H - k + 1, W - k + 1).
    Top: dL/dy padded by k - 1 zeros, correlated with the kernel rotated by 180°, gives
    dL/dx (a full convolution). Bottom: x correlated with dL/dy gives dL/dw. The window
    behind the first value of each result is outlined. The numbers are
    ``cnnbook.numpy_grad.conv2d_backward`` on these arrays.
    """
    xs = _grid_input("x", x, 6)
    w = _grid_input("weight", weight, 4)
    g = _grid_input("upstream", upstream, 6)
    if w.shape[0] != w.shape[1] or w.shape[0] > min(xs.shape):
        raise ValueError(f"weight must be square and fit in x {xs.shape}, got {w.shape}")
    k = w.shape[0]
    out_shape = (xs.shape[0] - k + 1, xs.shape[1] - k + 1)
    if g.shape != out_shape:
        raise ValueError(f"upstream must have the output's shape {out_shape}, got {g.shape}")
    _, cache = conv2d_forward(xs[None, None], w[None, None])
    dx, dw, _ = conv2d_backward(g[None, None], cache)
    dx, dw = dx[0, 0], dw[0, 0]
    g_pad = np.pad(g, k - 1)
    flipped = w[::-1, ::-1]
    ph, pw = g_pad.shape
    gap = 1.9
    x1, x2 = 0.4, 0.4 + pw + gap
    x3 = x2 + k + gap
    width = max(x3 + dx.shape[1], 0.4 + xs.shape[1] + 2 * gap + g.shape[1] + k) + 0.5
    y_low = 1.0
    y_top = y_low + xs.shape[0] + 2.0
    fig, ax = canvas(width, y_top + ph + 0.9)
    inner = [
        (i, j) for i in range(k - 1, k - 1 + g.shape[0]) for j in range(k - 1, k - 1 + g.shape[1])
    ]
    cell_grid(ax, (x1, y_top), g_pad, role="muted", highlight=inner, highlight_role="tensor")
    _outline(ax, x1, y_top + ph - k, k)
    _caption(ax, x1 + pw / 2, y_top + ph + 0.4, f"dL/dy padded by {k - 1}")
    _op(ax, x2 - gap / 2, y_top + ph - k / 2, "⋆")
    cell_grid(ax, (x2, y_top + ph - k), flipped, role="conv")
    _caption(ax, x2 + k / 2, y_top + ph + 0.4, "w rotated 180°")
    _op(ax, x3 - gap / 2, y_top + ph - k / 2, "=")
    cell_grid(ax, (x3, y_top + ph - dx.shape[0]), dx, role="input", highlight=[(0, 0)])
    _caption(ax, x3 + dx.shape[1] / 2, y_top + ph + 0.4, f"dL/dx {_shape_text(dx.shape)}")
    H, W = xs.shape
    cell_grid(ax, (x1, y_low), xs, role="input")
    _outline(ax, x1, y_low + H - g.shape[0], g.shape[0])
    _caption(ax, x1 + W / 2, y_low + H + 0.4, f"x {_shape_text(xs.shape)}")
    xg = x1 + W + gap
    _op(ax, xg - gap / 2, y_low + H - g.shape[0] / 2, "⋆")
    cell_grid(ax, (xg, y_low + H - g.shape[0]), g, role="tensor")
    _caption(ax, xg + g.shape[1] / 2, y_low + H + 0.4, "dL/dy")
    xw = xg + g.shape[1] + gap
    _op(ax, xw - gap / 2, y_low + H - g.shape[0] / 2, "=")
    cell_grid(ax, (xw, y_low + H - k), dw, role="conv", highlight=[(0, 0)])
    _caption(ax, xw + k / 2, y_low + H + 0.4, f"dL/dw {_shape_text(dw.shape)}")
    _caption(ax, width / 2, 0.45, "⋆ = correlation (slide, multiply, add), as in the forward pass")
    return fig


def _op(ax: Axes, x: float, y: float, symbol: str) -> None:
    ax.text(x, y, symbol, ha="center", va="center", fontsize=FONT_SIZE + 7)


# ----------------------------------------------------------------------------- chapter 8


def _norm_facts(n: int, c: int, h: int, w: int, groups: int) -> list[tuple[str, str, str]]:
    """(title, averaged axes, statistics shape and count) for BN, LN and GN, from torch."""
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(0))
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn(x)  # training mode: uses and records one mean and variance per channel
        ln, gn = nn.LayerNorm([c, h, w]), nn.GroupNorm(groups, c)
        # the kernels behind nn.LayerNorm and nn.GroupNorm also return the statistics they
        # normalised with: per_sample (N, 1, 1, 1), per_group (N, G)
        _, per_sample, _ = torch.native_layer_norm(
            x, ln.normalized_shape, ln.weight, ln.bias, ln.eps
        )
        _, per_group, _ = torch.native_group_norm(
            x, gn.weight, gn.bias, n, c, h * w, groups, gn.eps
        )
    per_sample = per_sample.reshape(n)  # (N,): one statistic per sample
    count = x.numel()
    return [
        (
            "BatchNorm2d",
            "over N, H, W",
            _stats(tuple(bn.running_mean.shape), count),
        ),
        (
            "LayerNorm",
            "over C, H, W",
            _stats(tuple(per_sample.shape), count),
        ),
        (
            f"GroupNorm, G = {groups}",
            f"over C/{groups}, H, W",
            _stats(tuple(per_group.shape), count),
        ),
    ]


def _stats(shape: tuple[int, ...], count: int) -> str:
    """'means 4×2, 192 values each': the statistics' shape and what each one averages."""
    return f"means {_shape_text(shape)}, {count // math.prod(shape)} values each"


def norm_axes(n: int = 4, c: int = 6, h: int = 8, w: int = 8, *, groups: int = 2) -> Figure:
    """Which values one mean and variance are taken over: BatchNorm, LayerNorm, GroupNorm.

    A batch (N, C, H, W) drawn three times as a block: N up, C across, H·W receding. The
    highlighted part is what one statistic averages: one channel across the whole batch
    (BatchNorm2d), one sample across all channels (LayerNorm over (C, H, W)), one sample
    and one group of C/G channels (GroupNorm). Under each: the shape of the statistics
    (``BatchNorm2d.running_mean``, and the per-sample and per-group means of a forward
    pass) and how many values each one averages. At most 12 channels; a batch of more than
    6 samples is drawn as 6 rows (the N label gives the real size).
    """
    n, c, h, w = (check_int(k, v, minimum=1) for k, v in (("n", n), ("c", c), ("h", h), ("w", w)))
    groups = check_int("groups", groups, minimum=1)
    if n > 4096 or c > 12:
        raise ValueError(f"n must be at most 4096 and c at most 12 to be drawn, got n={n}, c={c}")
    if c % groups:
        raise ValueError(f"groups ({groups}) must divide c ({c})")
    if n * h * w < 2:
        raise ValueError("n * h * w must be at least 2: BatchNorm needs two values per channel")
    facts = _norm_facts(n, c, h, w, groups)
    cell = 0.42
    rows = min(n, 6)
    depth, height, recede = c * cell, rows * cell, 1.8
    dx = 0.5 * recede / math.sqrt(2)
    panel = max(depth + dx + 1.4, 5.6)
    fig, ax = canvas(3 * panel + 0.4, height + dx + 4.2)
    base = 2.6
    _caption(
        ax,
        (3 * panel + 0.4) / 2,
        0.35,
        f"a batch N = {n} (up) × C = {c} (across) × H·W = {h}·{w} (back)",
    )
    parts = [  # (channel start, channel count, sample start, sample count) highlighted
        (c - 1, 1, 0, rows),
        (0, c, rows - 1, 1),
        (c - c // groups, c // groups, rows - 1, 1),
    ]
    for i, ((title, axes, stats), (c0, nc, n0, nn_)) in enumerate(zip(facts, parts, strict=True)):
        x0 = 0.4 + i * panel + (panel - depth - dx) / 2
        cuboid(ax, (x0, base), depth, height, recede, role="muted")
        _front_grid(ax, x0, base, c, rows, cell)
        cuboid(ax, (x0 + c0 * cell, base + n0 * cell), nc * cell, nn_ * cell, recede, role="norm")
        mid = x0 + depth / 2
        _caption(ax, mid + dx / 2, base + height + dx + 0.5, title)
        ax.text(x0 - 0.15, base + height / 2, "N", ha="right", va="center", fontsize=_SMALL)
        ax.text(mid, base - 0.3, "C", ha="center", va="center", fontsize=_SMALL)
        ax.text(
            x0 + depth + dx / 2 + 0.15,
            base + dx / 2 - 0.15,
            "H·W",
            ha="left",
            va="center",
            fontsize=_SMALL,
        )
        _caption(ax, x0 + (depth + dx) / 2, base - 0.85, axes)
        ax.text(
            x0 + (depth + dx) / 2,
            base - 1.45,
            stats,
            ha="center",
            va="center",
            fontsize=FONT_SIZE - 2,
        )
    return fig


def _front_grid(ax: Axes, x0: float, y0: float, c: int, n: int, cell: float) -> None:
    """Thin lines between the channels and the samples on the front face."""
    for j in range(1, c):
        ax.plot([x0 + j * cell] * 2, [y0, y0 + n * cell], color="#AAAAAA", lw=0.6)
    for i in range(1, n):
        ax.plot([x0, x0 + c * cell], [y0 + i * cell] * 2, color="#AAAAAA", lw=0.6)
