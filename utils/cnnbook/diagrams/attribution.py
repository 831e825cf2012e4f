"""Diagrams of what a network computes from one input: feature maps (chapter 12), Grad-CAM's
pipeline (chapter 13) and the FGSM step (chapter 14).

Every shape on these pictures comes from running the real layer or model (a forward hook,
a backward pass), and every number from the library: ``feature_map_diagram`` applies the
given ``nn.Conv2d``, ``grad_cam_diagram`` shows the map of
``cnnbook.interpret.grad_cam_from_scratch`` (from one pass), ``fgsm_diagram`` the gradient signs of
``cnnbook.attacks.input_gradient`` and the image ``cnnbook.attacks.fgsm`` returns.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from cnnbook._checks import check_int
from cnnbook._torch_checks import check_images, check_labels, check_model, eval_mode
from cnnbook.attacks import fgsm, input_gradient
from cnnbook.diagrams.style import FONT_SIZE, ROLES, arrow, canvas, cell_grid, layer_box
from cnnbook.interpret import resolve_layer

__all__ = ["feature_map_diagram", "fgsm_diagram", "grad_cam_diagram", "tiny_fgsm_example"]

SMALL = FONT_SIZE - 2  # secondary labels: shapes under a shape


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return "\u00d7".join(str(int(s)) for s in shape)


def _image(name: str, x: object) -> torch.Tensor:
    """One image as (1, C, H, W) floats; (C, H, W) is accepted too."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor (C, H, W) or (1, C, H, W), got {type(x).__name__}"
        )
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(
            f"{name} must be one image (C, H, W) or (1, C, H, W), got {tuple(x.shape)}"
        )
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite floats")
    return x.detach()


def _thumbnail(
    ax: Axes,
    image: torch.Tensor | np.ndarray,
    xy: tuple[float, float],
    size: float,
    *,
    cmap: str = "gray",
    edge: str = "#555555",
) -> None:
    """``image`` (C, H, W) or (H, W) drawn in the square ``size`` at lower-left ``xy``,
    subsampled to at most ~96 pixels a side (it is about an inch wide on the page).

    Grey (one channel) or colour (three), each stretched to its own range for display.
    """
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    step = -(-max(a.shape[:2]) // 96)  # at most ~96 pixels a side: a light SVG
    a = a[::step, ::step].astype(float)
    span = a.max() - a.min()
    a = (a - a.min()) / span if span > 0 else np.zeros_like(a)
    x, y = xy
    ax.imshow(
        a, cmap=cmap, extent=(x, x + size, y, y + size), interpolation="nearest", vmin=0, vmax=1
    )
    ax.add_patch(Rectangle(xy, size, size, fill=False, edgecolor=edge, lw=1.2))


def _sheets(
    ax: Axes,
    xy: tuple[float, float],
    size: float,
    n: int,
    *,
    shown: int,
    highlight: int | None,
    role: str = "tensor",
    step: float = 0.28,
) -> float:
    """A stack of ``shown`` square sheets (one per channel, of ``n``), the first at ``xy``,
    each next one up and to the right; ``highlight``: the sheet (index < shown) to mark.
    Returns the x of the stack's right edge."""
    face, edge = ROLES[role]
    hface, hedge = ROLES["highlight"]
    for i in reversed(range(shown)):
        mark = i == highlight
        ax.add_patch(
            Rectangle(
                (xy[0] + i * step, xy[1] + i * step),
                size,
                size,
                facecolor=hface if mark else face,
                edgecolor=hedge if mark else edge,
                lw=1.6 if mark else 1.0,
            )
        )
    return xy[0] + (shown - 1) * step + size


# --------------------------------------------------------------------------- chapter 12


def feature_map_diagram(layer: nn.Conv2d, image: torch.Tensor, channel: int = 0) -> Figure:
    """Image (C_in, H, W) -> the layer's C_out kernels (C_in, k, k) -> C_out maps (h, w).

    layer: the ``nn.Conv2d`` to show; image: (C_in, H, W) or (1, C_in, H, W); channel: the
    output channel to highlight, drawn as its real response to ``image``. The shapes are
    those of the layer's forward pass on the image.
    """
    if not isinstance(layer, nn.Conv2d):
        raise TypeError(f"layer must be an nn.Conv2d, got {type(layer).__name__}")
    x = _image("image", image)
    if x.shape[1] != layer.in_channels:
        raise ValueError(f"image has {x.shape[1]} channels, layer expects {layer.in_channels}")
    c_out = layer.out_channels
    channel = check_int("channel", channel, minimum=0)
    if channel >= c_out:
        raise ValueError(f"channel must be < {c_out} (the layer's out_channels), got {channel}")
    with torch.no_grad():
        maps = layer(x.to(layer.weight.dtype))[0]  # (C_out, h, w)
    k_h, k_w = layer.kernel_size
    fig, ax = canvas(20, 8.4)
    _thumbnail(ax, x[0], (0.3, 2.2), 3.8)
    ax.text(2.2, 1.8, f"input {_shape(x.shape[1:])}", ha="center", va="top", fontsize=SMALL)
    ax.text(2.2, 7.5, "image", ha="center", fontsize=FONT_SIZE)
    arrow(ax, (4.3, 4.1), (5.5, 4.1))
    shown = min(c_out, 8)
    pos = min(channel, shown - 1)  # the highlighted sheet's place in the drawn stack
    right = _sheets(ax, (5.7, 3.0), 1.4, c_out, shown=shown, highlight=pos, role="conv")
    kernel = _shape(layer.weight.shape[1:])
    ax.text(7.4, 2.6, f"{c_out} kernels\n{kernel} each", ha="center", va="top", fontsize=SMALL)
    ax.text(7.4, 6.5, f"{type(layer).__name__}", ha="center", fontsize=FONT_SIZE)
    ax.text(
        7.4,
        6.0,
        f"stride {layer.stride[0]}, padding {layer.padding[0]}",
        ha="center",
        fontsize=SMALL,
    )
    arrow(ax, (right + 0.2, 4.1), (right + 1.3, 4.1))
    ax.text(right + 0.75, 4.4, "slide", ha="center", fontsize=SMALL)
    x0 = right + 1.5
    end = _sheets(ax, (x0, 2.2), 2.6, c_out, shown=shown, highlight=pos, step=0.3)
    ax.text(
        x0 + 1.3,
        1.8,
        f"{c_out} maps {_shape(maps.shape[1:])}",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    ax.text(x0 + 2.3, 7.5, f"output {_shape(maps.shape)}", ha="center", fontsize=FONT_SIZE)
    # The chosen channel, pulled out of the stack, as its real values.
    cx = end + 0.7
    _thumbnail(ax, maps[channel], (cx, 2.2), 3.4, cmap="magma", edge=ROLES["highlight"][1])
    arrow(ax, (end + 0.05, 3.9), (cx - 0.05, 3.9))
    ax.text(cx + 1.7, 1.8, f"channel {channel}", ha="center", va="top", fontsize=SMALL)
    ax.text(cx + 1.7, 6.5, f"filter {channel}'s\nresponse", ha="center", fontsize=SMALL)
    ax.text(
        10,
        0.3,
        f"one {k_h}\u00d7{k_w} kernel per output channel: map c is kernel c "
        "slid over every position",
        ha="center",
        fontsize=SMALL,
    )
    return fig


# --------------------------------------------------------------------------- chapter 13


def grad_cam_diagram(
    model: nn.Module, layer: nn.Module | str, x: torch.Tensor, target: int
) -> Figure:
    """Grad-CAM's steps for one image x: (1, 3, H, W), class ``target``, at ``layer``:
    forward to A (K, h, w), backward for dy_c/dA (K, h, w), alpha_k = its mean over
    (h, w), ReLU(sum_k alpha_k A_k) (h, w), and that map upsampled over the image.

    Shapes come from hooks on the real forward and backward pass; the map is
    ``cnnbook.interpret.grad_cam_from_scratch``'s,
    computed from that one pass.
    """
    model = check_model(model)
    x = _image("x", x)
    name, module = resolve_layer(model, layer)
    target = check_int("target", target, minimum=0)
    saved: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        saved["A"] = out
        out.register_hook(lambda g: saved.update(dA=g))

    handle = module.register_forward_hook(keep)
    try:
        with eval_mode(model):
            x_leaf = x.clone().requires_grad_(True)
            scores = model(x_leaf)
            if target >= scores.shape[1]:
                raise ValueError(
                    f"target must be < {scores.shape[1]} (the model's classes), got {target}"
                )
            if saved["A"].ndim != 4:
                raise ValueError(
                    f"layer {name!r} must output a feature map (1, K, h, w), "
                    f"got {saved['A'].ndim} dimensions"
                )
            torch.autograd.grad(scores[0, target], x_leaf)
    finally:
        handle.remove()
    # The same computation as grad_cam_from_scratch (a test checks they agree), from the
    # one forward and backward pass whose shapes the picture shows.
    alpha = saved["dA"].mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1)
    cam = F.relu((alpha * saved["A"]).sum(dim=1)[0]).detach().numpy()  # (h, w)
    k, h, w = saved["A"].shape[1:]
    red = ROLES["attention"][1]
    fig, ax = canvas(20, 10.4)
    _thumbnail(ax, x[0], (0.3, 6.4), 3.0)
    ax.text(1.8, 9.7, f"x: {_shape(x.shape[1:])}", ha="center", fontsize=SMALL)
    arrow(ax, (3.5, 7.9), (4.0, 7.9))
    layer_box(ax, (4.1, 6.9), 3.4, 2.0, f"forward to\n{name}", role="conv", fontsize=SMALL)
    arrow(ax, (7.6, 7.9), (8.3, 7.9))
    _sheets(ax, (8.4, 6.6), 1.8, k, shown=5, highlight=None)
    ax.text(9.7, 9.8, f"A: {_shape((k, h, w))}", ha="center", fontsize=SMALL)
    arrow(ax, (11.4, 7.9), (12.2, 7.9))
    layer_box(ax, (12.3, 6.9), 3.0, 2.0, "rest of\nthe model", role="muted", fontsize=SMALL)
    arrow(ax, (15.4, 7.9), (16.2, 7.9))
    layer_box(ax, (16.3, 7.1), 3.4, 1.6, f"score y_c\nc = {target}", role="output", fontsize=SMALL)
    # Backward: the gradient of the class score with respect to A, then its channel means.
    arrow(ax, (18.0, 7.0), (12.0, 3.2), connection="arc3,rad=-0.25", color=red)
    ax.text(16.6, 4.2, "backward", ha="left", fontsize=SMALL, color=red)
    _sheets(ax, (9.0, 2.0), 1.8, k, shown=5, highlight=None, role="attention")
    ax.text(
        10.3,
        1.6,
        f"\u2202y_c/\u2202A: {_shape(saved['dA'].shape[1:])}",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    arrow(ax, (8.9, 2.9), (8.3, 2.9))
    layer_box(ax, (6.3, 2.2), 1.9, 1.4, f"\u03b1: {k}", role="attention", fontsize=SMALL)
    ax.text(7.25, 3.8, "\u03b1_k = mean over h, w", ha="center", fontsize=SMALL)
    arrow(ax, (6.2, 2.9), (5.7, 2.9))
    _thumbnail(ax, cam, (3.5, 1.9), 2.1, cmap="inferno", edge=ROLES["highlight"][1])
    ax.text(
        4.55, 1.6, f"ReLU(\u03a3 \u03b1_k A_k)\n{h}\u00d7{w}", ha="center", va="top", fontsize=SMALL
    )
    arrow(ax, (8.6, 6.5), (4.9, 4.2), connection="arc3,rad=0.1")
    ax.text(6.4, 5.6, "A_k", ha="right", fontsize=SMALL)
    arrow(ax, (3.4, 2.9), (2.9, 2.9))
    _thumbnail(ax, x[0], (0.3, 1.6), 2.5)
    up = F.interpolate(
        torch.as_tensor(cam)[None, None],
        size=tuple(x.shape[2:]),
        mode="bilinear",
        align_corners=False,
    )[0, 0].numpy()
    up = up[:: -(-up.shape[0] // 96), :: -(-up.shape[1] // 96)]  # as light as the photo
    top = float(up.max())
    ax.imshow(
        up / top if top > 0 else up,
        cmap="inferno",
        alpha=0.55,
        vmin=0,
        vmax=1,
        extent=(0.3, 2.8, 1.6, 4.1),
        zorder=3,
    )
    ax.text(
        1.55,
        1.3,
        f"upsampled to\n{x.shape[2]}\u00d7{x.shape[3]}",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    return fig


# --------------------------------------------------------------------------- chapter 14


def tiny_fgsm_example(seed: int = 3) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A seeded linear classifier of 3x3 grey images (3 classes) and one image x: (1, 1, 3, 3)
    holding pixels at 0 and 1 with its label y: (1,); with the default seed the step
    leaves [0, 1] at both ends, so the clipping shows."""
    seed = check_int("seed", seed, minimum=0)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(9, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.tensor([[0.0, 0.2, 1.0], [0.5, 0.9, 0.1], [1.0, 0.4, 0.0]]).reshape(1, 1, 3, 3)
    return model, x, torch.tensor([1])


def fgsm_diagram(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> Figure:
    """FGSM on one small grey image x: (1, 1, H, W) with H, W <= 5: x, sign(g),
    x + eps * sign(g), its clip to [0, 1] (= ``cnnbook.attacks.fgsm``), and the L-inf
    ball of radius eps around x in the plane of the first two pixels.
    """
    model = check_model(model)
    x = check_images("x", x, channels=1)
    if x.shape[0] != 1 or max(x.shape[2:]) > 5:
        raise ValueError(
            f"x must be one small image (1, 1, H, W) with H, W <= 5, got {tuple(x.shape)}"
        )
    with eval_mode(model), torch.no_grad():
        n_classes = model(x).shape[1]
    y = check_labels("y", y, n=1, num_classes=n_classes)
    x_adv = fgsm(model, x, y, epsilon)  # validates epsilon
    with eval_mode(model):
        sign = input_gradient(model, x, y).sign()[0, 0].numpy()
    before = x[0, 0].numpy()
    stepped = before + epsilon * sign
    after = x_adv[0, 0].numpy()
    h, w = before.shape
    cell = min(1.0, 3.2 / max(h, w))
    fig, ax = canvas(20, 8.6)
    grids = [
        (before, "x", "input"),
        (sign, "sign(\u2207\u2093L)", "muted"),
        (stepped, f"x + {epsilon:g}\u00b7sign", "tensor"),
        (after, "clip to [0, 1]", "highlight"),
    ]
    for i, (values, title, role) in enumerate(grids):
        x0 = 0.3 + i * 3.7
        clipped = [
            (r, c) for r in range(h) for c in range(w) if i == 3 and stepped[r, c] != after[r, c]
        ]
        cell_grid(
            ax,
            (x0, 3.0),
            np.round(values, 2),
            cell=cell,
            role=role,
            highlight=clipped,
            highlight_role="attention",
            fmt="{:g}",
            fontsize=SMALL,
        )
        ax.text(x0 + w * cell / 2, 3.0 + h * cell + 0.3, title, ha="center", fontsize=SMALL)
        if i:
            arrow(ax, (x0 - 0.5, 3.0 + h * cell / 2), (x0 - 0.05, 3.0 + h * cell / 2))
    ax.text(
        7.5,
        2.2,
        f"every pixel moves by exactly \u00b1{epsilon:g}, then values outside [0, 1] are cut back",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    ax.text(
        7.5,
        1.3,
        f"max |x_adv - x| = {np.abs(after - before).max():.2f} \u2264 \u03b5 = {epsilon:g}",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    # The L-infinity ball in the plane of pixels (0, 0) and (0, 1), inside the box [0, 1]^2.
    bx, by, s = 15.4, 1.4, 4.2
    ax.add_patch(Rectangle((bx, by), s, s, fill=False, edgecolor="#555555", lw=1.0))
    p, q = before[0, 0], before[0, 1]
    face, edge = ROLES["highlight"]
    ax.add_patch(
        Rectangle(
            (bx + s * (p - epsilon), by + s * (q - epsilon)),
            2 * s * epsilon,
            2 * s * epsilon,
            facecolor=face,
            edgecolor=edge,
            alpha=0.6,
            lw=1.2,
        )
    )
    ax.plot([bx + s * p], [by + s * q], "o", color="#000000", ms=4)
    ax.plot([bx + s * after[0, 0]], [by + s * after[0, 1]], "s", color=edge, ms=5)
    ax.text(bx + s / 2, by - 0.35, "pixel (0, 0)", ha="center", va="top", fontsize=SMALL)
    ax.text(
        bx - 0.3, by + s / 2, "pixel (0, 1)", ha="right", va="center", rotation=90, fontsize=SMALL
    )
    ax.text(
        bx + s / 2, by + s + 0.3, f"L\u221e ball, radius {epsilon:g}", ha="center", fontsize=SMALL
    )
    return fig
