"""Diagrams of the convolution itself: what it reads, what it writes, and how far it sees.

Chapters: 1 (``feature_hierarchy``), 2 (``conv_volumes``, ``im2col_product``), 3
(``conv_geometry``) and 4 (``receptive_field_growth``).

Every number and shape in these pictures is computed, not typed: shapes come from a
forward pass of the real module (``nn.Sequential`` or ``nn.Conv2d`` on the ``meta``
device, which computes shapes without arithmetic), the im2col matrix from
``cnnbook.numpy_ops.im2col``, output sizes from ``cnnbook.arith.conv_output_size`` and
receptive fields from ``cnnbook.arith.analyze``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn
from torch.func import functional_call

from cnnbook._checks import check_array, check_chw, check_int
from cnnbook.arith import Conv, Pool, analyze, conv_output_size, effective_kernel_size
from cnnbook.diagrams.style import FONT_SIZE, arrow, canvas, cell_grid, cuboid, fill
from cnnbook.numpy_ops import conv2d_im2col, im2col

__all__ = [
    "conv_geometry",
    "conv_volumes",
    "feature_hierarchy",
    "im2col_product",
    "receptive_field_growth",
]

_SMALL = FONT_SIZE - 1


def _shape_text(shape: Sequence[int]) -> str:
    """(3, 32, 32) -> '3×32×32', the way every diagram writes a shape."""
    return "×".join(str(int(v)) for v in shape)


# ----------------------------------------------------------------------------- chapter 1


def _stage_shapes(model: nn.Sequential, input_shape: tuple[int, int, int]) -> list[tuple]:
    """(C, H, W) after every child of ``model``: a forward pass in eval mode on ``meta``.

    The parameters and buffers are swapped for ``meta`` tensors of the same shapes
    (``torch.func.functional_call``), so the pass computes shapes only and takes
    milliseconds even for an ImageNet network; the model itself is not changed.
    """
    state = {name: torch.empty_like(v, device="meta") for name, v in model.state_dict().items()}
    shapes: list[tuple] = []
    hooks = [
        child.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
        for child in model
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(model, state, (torch.zeros(1, *input_shape, device="meta"),))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return shapes


def feature_hierarchy(
    model: nn.Sequential,
    input_shape: tuple[int, int, int],
    stages: Sequence[int],
    names: Sequence[str] | None = None,
) -> Figure:
    """Feature maps of a network as volumes: the grid shrinks while the channels grow.

    model: an ``nn.Sequential`` of stages (e.g. ``mobilenet.features``); input_shape:
    (C, H, W); stages: indices of the children whose outputs are drawn, increasing;
    names: one word per volume (input first), e.g. pixels, edges, parts, objects.
    Each volume is labelled ``C×H×W``, the shape of that child's output for one image.
    Height follows H (square-root scale), width across follows log2(C).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, got {type(model).__name__}")
    shape = check_chw("input_shape", input_shape)
    if not isinstance(stages, (list, tuple)) or not 1 <= len(stages) <= 6:
        raise ValueError(f"stages must be a list of 1 to 6 child indices, got {stages!r}")
    picks = [check_int(f"stages[{i}]", s, minimum=0) for i, s in enumerate(stages)]
    if any(b <= a for a, b in zip(picks, picks[1:], strict=False)) or picks[-1] >= len(model):
        raise ValueError(f"stages must increase and be < {len(model)} (children), got {picks}")
    if names is not None and (not isinstance(names, (list, tuple)) or len(names) != len(picks) + 1):
        raise ValueError(f"names must hold {len(picks) + 1} strings (input first), got {names!r}")
    all_shapes = _stage_shapes(model, shape)
    shapes = [shape] + [all_shapes[i] for i in picks]
    for i, s in zip(picks, shapes[1:], strict=True):
        if len(s) != 3:
            raise ValueError(f"stages: child {i} outputs shape {s}, not a (C, H, W) map")
    top = max(s[1] for s in shapes)
    sizes = [
        (0.3 + 0.28 * math.log2(max(c, 2)), 0.5 + 2.6 * math.sqrt(h / top), w) for c, h, w in shapes
    ]
    fig, ax = canvas(3.05 * len(shapes) + 0.9, 6.0)
    x = 1.0
    for k, ((_c, _h, w), (depth, height, _)) in enumerate(zip(shapes, sizes, strict=True)):
        recede = 0.5 + 2.6 * math.sqrt(w / top)
        y = 1.4 + (3.1 - height) / 2
        cuboid(ax, (x, y), depth, height, recede, role="input" if k == 0 else "tensor", slant=0.45)
        centre = x + depth / 2
        ax.text(centre, 0.85, _shape_text(shapes[k]), ha="center", va="center", fontsize=_SMALL)
        if names is not None:
            ax.text(
                centre,
                0.3,
                str(names[k]),
                ha="center",
                va="center",
                fontsize=_SMALL,
                style="italic",
            )
        if k + 1 < len(shapes):
            end = x + depth + 0.45 * recede / math.sqrt(2)
            arrow(ax, (end + 0.1, 2.9), (x + 3.05 - 0.1, 2.9))
        x += 3.05
    return fig


# ----------------------------------------------------------------------------- chapter 2


def conv_volumes(
    c_in: int, c_out: int, k: int, h: int, w: int, *, stride: int = 1, padding: int = 0
) -> Figure:
    """A convolutional layer as volumes: input, its C_out kernels, and one map per kernel.

    The input (C_in, H, W) on the left; the kernels (C_in, k, k) in the middle, each as deep
    as the input (up to three drawn, the rest stand behind the dots); the output
    (C_out, H_out, W_out) on the right. Labels are the shapes of ``nn.Conv2d``'s weight and
    of its forward pass (run on the ``meta`` device: shapes only).
    """
    c_in, c_out, k, h, w = (
        check_int(name, v, minimum=1)
        for name, v in (("c_in", c_in), ("c_out", c_out), ("k", k), ("h", h), ("w", w))
    )
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    for name, size in (("h", h), ("w", w)):
        if k > size + 2 * padding:
            raise ValueError(
                f"k ({k}) must fit in the padded input: {name} + 2 * padding = {size + 2 * padding}"
            )
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, device="meta")
    out_shape = tuple(conv(torch.empty(1, c_in, h, w, device="meta")).shape[1:])
    cell = min(3.0 / max(h, w), 0.45)
    depth_of = lambda c: min(c, 8) * 0.16 + 0.2  # noqa: E731  (channels, capped at 8)
    fig, ax = canvas(15.0, 7.3)
    cuboid(
        ax,
        (1.2, 2.0),
        depth_of(c_in),
        h * cell,
        w * cell,
        role="input",
        label="input " + _shape_text((c_in, h, w)),
    )
    shown = min(c_out, 3)
    x_k, kh = 6.0, k * cell
    gap = min(1.55, 4.6 / shown)
    for i in range(shown):
        y = 5.0 - i * gap
        cuboid(ax, (x_k, y), depth_of(c_in), kh, kh, role="conv")
        ax.text(x_k - 0.2, y + kh / 2, f"kernel {i + 1}", ha="right", va="center", fontsize=_SMALL)
        arrow(
            ax,
            (x_k + depth_of(c_in) + kh * 0.4, y + kh / 2),
            (10.0, 3.0 + 0.4 * (1 - i)),
            color="#888888",
            style="-",
        )
    if c_out > shown:
        ax.text(
            x_k + depth_of(c_in) / 2, 5.0 - shown * gap + 0.5, "⋮", ha="center", fontsize=FONT_SIZE
        )
    ax.text(
        x_k + 0.6,
        0.5,
        f"weight {_shape_text(conv.weight.shape)}",
        ha="center",
        va="center",
        fontsize=_SMALL,
    )
    arrow(ax, (1.2 + depth_of(c_in) + 1.2, 3.0), (x_k - 1.5, 3.8))
    c2, h2, w2 = out_shape
    cuboid(
        ax,
        (10.0, 2.0),
        depth_of(c_out),
        h2 * cell,
        w2 * cell,
        role="tensor",
        label="output " + _shape_text(out_shape),
    )
    ax.text(
        10.0 + depth_of(c_out) / 2,
        6.3,
        f"{c_out} maps, one per kernel",
        ha="center",
        fontsize=_SMALL,
    )
    return fig


def _check_image(name: str, value: object, limit: int) -> np.ndarray:
    arr = check_array(name, value, ndim=2)
    if not 1 <= max(arr.shape) <= limit:
        raise ValueError(f"{name} must be at most {limit}×{limit} to be drawn, got {arr.shape}")
    return arr.astype(float)


def im2col_product(image: np.ndarray, kernel: np.ndarray) -> Figure:
    """im2col: every receptive field becomes a column, the kernel a row, the layer a GEMM.

    image: (H, W), at most 5 × 5; kernel: (k_h, k_w). Draws the image and the kernel, the
    column matrix ``cnnbook.numpy_ops.im2col`` builds from the image, (k_h k_w, L) with
    L = H_out W_out, the kernel flattened to a row, their product (1, L), and that row
    reshaped to the output map, which equals ``conv2d_im2col`` of the two. The first
    receptive field, its column and its output value are highlighted.
    """
    x = _check_image("image", image, 5)
    w = _check_image("kernel", kernel, 5)
    if w.shape[0] > x.shape[0] or w.shape[1] > x.shape[1]:
        raise ValueError(f"kernel {w.shape} must fit in image {x.shape}")
    cols = im2col(x[None, None], w.shape)[0]  # (K, L)
    K, L = cols.shape
    if L > 9:
        raise ValueError(f"image and kernel give {L} positions; at most 9 can be drawn")
    out = conv2d_im2col(x[None, None], w[None, None])[0, 0]  # (H_out, W_out)
    row = w.reshape(1, K) @ cols  # (1, L)
    kh, kw = w.shape
    first = [(a, b) for a in range(kh) for b in range(kw)]
    fs = _SMALL if max(K, L) <= 6 else FONT_SIZE - 2
    left, y0 = 1.3, 0.9  # margins for the captions
    c_x = left + K + 1.2
    r_x = c_x + L + 1.2
    o_x = r_x + L + 1.4
    mid = y0 + K / 2 - 0.5  # the row vectors sit level with the middle of cols
    top = y0 + K + 1.6
    fig, ax = canvas(o_x + out.shape[1] + 1.5, top + max(x.shape[0], kh) + 0.8)
    cell_grid(ax, (c_x, top), x, highlight=first, fontsize=fs)
    _caption(ax, c_x + x.shape[1] / 2, top + x.shape[0] + 0.4, f"image {_shape_text(x.shape)}")
    cell_grid(ax, (left, top), w, role="conv", fontsize=fs)
    _caption(ax, left + kw / 2, top + kh + 0.4, f"kernel {_shape_text(w.shape)}")
    arrow(ax, (c_x + x.shape[1] / 2, top - 0.1), (c_x + x.shape[1] / 2, y0 + K + 0.1), "im2col")
    arrow(ax, (left + kw / 2, top - 0.1), (left + kw / 2, mid + 1.1), "flatten")
    cell_grid(ax, (left, mid), _row_of(w, K), role="conv", fontsize=fs)
    ax.text(c_x - 0.6, mid + 0.5, "@", ha="center", va="center", fontsize=FONT_SIZE)
    cell_grid(ax, (c_x, y0), cols, highlight=[(r, 0) for r in range(K)], fontsize=fs)
    _caption(ax, c_x + L / 2, y0 - 0.45, f"cols {_shape_text(cols.shape)}")
    ax.text(r_x - 0.6, mid + 0.5, "=", ha="center", va="center", fontsize=FONT_SIZE)
    cell_grid(ax, (r_x, mid), row, role="tensor", highlight=[(0, 0)], fontsize=fs)
    _caption(ax, r_x + L / 2, mid - 0.45, f"output row {_shape_text(row.shape)}")
    arrow(ax, (r_x + L + 0.15, mid + 0.5), (o_x - 0.15, mid + 0.5))
    cell_grid(
        ax, (o_x, mid + 1 - out.shape[0]), out, role="tensor", highlight=[(0, 0)], fontsize=fs
    )
    _caption(ax, o_x + out.shape[1] / 2, mid + 1.45, f"output {_shape_text(out.shape)}")
    return fig


def _row_of(kernel: np.ndarray, K: int) -> np.ndarray:
    """The kernel as one row (1, K), in im2col's order (row-major over the taps)."""
    return np.asarray(kernel).reshape(1, K)


def _caption(ax: Axes, x: float, y: float, text: str) -> None:
    ax.text(x, y, text, ha="center", va="center", fontsize=_SMALL)


# ----------------------------------------------------------------------------- chapter 3


def conv_geometry(
    size: int, kernel_size: int, *, stride: int = 1, padding: int = 0, dilation: int = 1
) -> Figure:
    """Padding, stride and dilation on a square input: where the kernel's taps land.

    The padded input (padding cells grey), the taps of the first output (orange) and of
    its right neighbour (dots, ``stride`` cells further), and the output grid, whose size
    is ``cnnbook.arith.conv_output_size`` (the formula is written under it).
    size + 2 * padding must be at most 13.
    """
    size = check_int("size", size, minimum=1)
    k = check_int("kernel_size", kernel_size, minimum=1)
    s = check_int("stride", stride, minimum=1)
    p = check_int("padding", padding, minimum=0)
    d = check_int("dilation", dilation, minimum=1)
    n = size + 2 * p
    if n > 13:
        raise ValueError(f"size + 2 * padding must be at most 13 to be drawn, got {n}")
    out = conv_output_size(size, k, s, p, d)  # raises (naming kernel_size) if it does not fit
    span = effective_kernel_size(k, d)
    out_x = n + 2.6
    fig, ax = canvas(out_x + max(out, 3) + 4.6, n + 3.2)
    base = 1.2
    cell_grid(ax, (0.4, base), (n, n), role="muted")
    if size:
        cell_grid(ax, (0.4 + p, base + p), (size, size), role="input")
    taps = [(a * d, b * d) for a in range(k) for b in range(k)]
    for r, c in taps:
        _square(ax, 0.4 + c, base + n - 1 - r, "highlight")
    if out > 1:
        for r, c in taps:
            ax.plot(0.4 + c + s + 0.5, base + n - 1 - r + 0.5, "o", color="#0072B2", ms=4.5)
    _caption(
        ax,
        0.4 + n / 2,
        base + n + 0.5,
        f"input {size}×{size}, padding {p}, stride {s}, dilation {d}",
    )
    _caption(ax, 0.4 + n / 2, base - 0.5, f"kernel {k}×{k} spans {span}×{span}")
    arrow(ax, (n + 0.7, base + n / 2), (out_x - 0.2, base + n / 2))
    y_out = base + (n - out) / 2
    cell_grid(ax, (out_x, y_out), (out, out), role="tensor", highlight=[(0, 0)])
    if out > 1:
        ax.plot(out_x + 1.5, y_out + out - 0.5, "o", color="#0072B2", ms=4.5)
    _caption(ax, out_x + out / 2, y_out + out + 0.6, f"output {out}×{out}")
    _caption(
        ax,
        out_x + out / 2 + 1.0,
        y_out - 0.6,
        f"⌊({size} + 2·{p} − {d}·({k} − 1) − 1) / {s}⌋ + 1 = {out}",
    )
    return fig


def _square(ax: Axes, x: float, y: float, role: str) -> None:
    ax.add_patch(Rectangle((x, y), 1, 1, facecolor=fill(role), edgecolor="#D55E00", lw=1.2))


# ----------------------------------------------------------------------------- chapter 4


def _window(spec: Conv | Pool) -> tuple[int, int, int, int]:
    """(k, stride, padding, dilation) of a spec along the width axis."""

    def last(v: object) -> int:
        return v[1] if isinstance(v, (tuple, list)) else v  # type: ignore[index,return-value]

    if isinstance(spec, Pool):
        stride = spec.kernel_size if spec.stride is None else spec.stride
        return last(spec.kernel_size), last(stride), last(spec.padding), 1
    return last(spec.kernel_size), last(spec.stride), last(spec.padding), last(spec.dilation)


def receptive_field_growth(specs: Sequence[Conv | Pool], size: int | None = None) -> Figure:
    """One unit at the top and, in every layer below, the units it depends on (1-D).

    specs: a stack of ``cnnbook.arith.Conv`` / ``Pool`` (width axis drawn); size: input
    length (default: the receptive field plus one jump on each side). Each row is a layer,
    its units placed at their centres in input pixels; marked units are the ones the top
    unit reads through the stack, and each row is labelled with ``analyze``'s ``rf``.
    """
    if not isinstance(specs, (list, tuple)) or not 1 <= len(specs) <= 6:
        raise ValueError(f"specs must be a list of 1 to 6 Conv/Pool specs, got {specs!r}")
    for i, spec in enumerate(specs):
        if not isinstance(spec, (Conv, Pool)):
            raise TypeError(f"specs[{i}] must be a Conv or Pool, got {type(spec).__name__}")
    probe = analyze(list(specs), (1, 64, 64))  # rf and jump do not depend on the size
    rf, jump = probe[-1].rf, probe[-1].jump
    rf, jump = (v[1] if isinstance(v, tuple) else v for v in (rf, jump))
    size = int(rf + 2 * jump) if size is None else check_int("size", size, minimum=1)
    if size > 40:
        raise ValueError(f"size must be at most 40 units to be drawn, got {size}")
    reports = analyze(list(specs), (1, size, size))  # raises, naming the layer, if too small
    lengths = [size] + [r.out_shape[2] for r in reports]
    windows = [_window(s) for s in specs]
    seen = [set() for _ in lengths]
    seen[-1] = {(lengths[-1] - 1) // 2}
    for layer in range(len(specs), 0, -1):
        k, s, p, d = windows[layer - 1]
        for i in seen[layer]:
            seen[layer - 1] |= {
                j for j in (i * s - p + a * d for a in range(k)) if 0 <= j < lengths[layer - 1]
            }
    centres = [[float(i) for i in range(size)]]
    for r, n in zip(reports, lengths[1:], strict=True):
        start, step = (v[1] if isinstance(v, tuple) else v for v in (r.start, r.jump))
        centres.append([start + i * step for i in range(n)])
    left, gap = 4.2, 1.5
    fig, ax = canvas(left + size + 3.0, gap * len(lengths) + 0.4)
    names = ["input"] + [_layer_name(r.name, w) for r, w in zip(reports, windows, strict=True)]
    rfs = [1] + [r.rf[1] if isinstance(r.rf, tuple) else r.rf for r in reports]
    for layer, (xs, marks) in enumerate(zip(centres, seen, strict=True)):
        y = 0.4 + layer * gap
        for i, x in enumerate(xs):
            role = "highlight" if i in marks else ("input" if layer == 0 else "muted")
            ax.add_patch(
                Rectangle(
                    (left + x + 0.1, y), 0.8, 0.8, facecolor=fill(role), edgecolor="#555555", lw=0.8
                )
            )
        ax.text(left - 0.3, y + 0.4, names[layer], ha="right", va="center", fontsize=_SMALL)
        ax.text(
            left + size + 0.3, y + 0.4, f"rf {rfs[layer]}", ha="left", va="center", fontsize=_SMALL
        )
        if layer == 0:
            continue
        k, s, p, d = windows[layer - 1]
        for i in marks:
            for j in (i * s - p + a * d for a in range(k)):
                if 0 <= j < lengths[layer - 1]:
                    ax.plot(
                        [left + xs[i] + 0.5, left + centres[layer - 1][j] + 0.5],
                        [y, y - gap + 0.8],
                        color="#888888",
                        lw=0.7,
                    )
    return fig


def _layer_name(name: str, window: tuple[int, int, int, int]) -> str:
    k, s, _, d = window
    extra = (f" s{s}" if s > 1 else "") + (f" d{d}" if d > 1 else "")
    return f"{name} k{k}{extra}"
