"""Diagrams of training set-ups: DDP's all-reduce (chapter 10), what transfer learning
freezes (chapter 11), and Siamese and triplet networks (chapter 17).

The numbers are the library's: ``ddp_example`` splits a batch with
``cnnbook.distributed.shard`` and all-reduces real gradients with a simulated ring,
``transfer_diagram`` reads ``requires_grad`` after ``cnnbook.transfer``'s freeze
functions on copies of the model, and the losses of ``siamese_diagram`` and
``triplet_diagram`` are ``cnnbook.metric_learning``'s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Arc, Rectangle
from torch import nn

from cnnbook._checks import check_int
from cnnbook._torch_checks import check_model, eval_mode
from cnnbook.diagrams.attribution import SMALL, _image, _shape, _thumbnail
from cnnbook.diagrams.style import FONT_SIZE, ROLES, arrow, canvas, cell_grid, fill, layer_box
from cnnbook.distributed import shard
from cnnbook.metric_learning import contrastive_loss, triplet_loss
from cnnbook.transfer import backbone_blocks, freeze_backbone, head_name, unfreeze

__all__ = [
    "DDPExample",
    "ddp_diagram",
    "ddp_example",
    "ring_all_reduce",
    "siamese_diagram",
    "transfer_diagram",
    "transfer_modes",
    "triplet_diagram",
]

# --------------------------------------------------------------------------- chapter 10


@dataclass(frozen=True)
class DDPExample:
    """One data-parallel step of a linear model: each rank's shard (item indices), its
    gradient (W, P), what each rank holds after the ring all-reduce (W, P), and the
    gradient of the whole batch on one process (P,)."""

    shards: list[list[int]]
    gradients: np.ndarray
    reduced: np.ndarray
    full_batch: np.ndarray


def ring_all_reduce(values: np.ndarray) -> np.ndarray:
    """Average (W, P) rows the way a ring all-reduce does; returns what each rank holds.

    Each rank's vector is cut into W chunks. Reduce-scatter: in W - 1 steps rank r sends
    one chunk to rank r + 1 (mod W), which adds it to its own, until rank r holds the full
    sum of chunk r + 1. All-gather: W - 1 more steps pass the summed chunks round the ring.
    Each rank then divides by W. Every rank sends 2 (W - 1) / W of the vector in all.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"values must be (W, P) with W >= 1, got shape {values.shape}")
    W = values.shape[0]
    chunks = [np.array_split(row.copy(), W) for row in values]  # chunks[rank][chunk]
    for step in range(W - 1):  # reduce-scatter
        sent = [(r, (r - step) % W, chunks[r][(r - step) % W].copy()) for r in range(W)]
        for r, c, data in sent:
            chunks[(r + 1) % W][c] += data
    for step in range(W - 1):  # all-gather: rank r owns chunk (r + 1) % W
        sent = [(r, (r + 1 - step) % W, chunks[r][(r + 1 - step) % W].copy()) for r in range(W)]
        for r, c, data in sent:
            chunks[(r + 1) % W][c] = data
    return np.stack([np.concatenate(row) for row in chunks]) / W


def ddp_example(
    world_size: int = 3, n_items: int = 12, n_params: int = 3, seed: int = 0
) -> DDPExample:
    """A small DDP step: a seeded linear model w (n_params,) and batch (n_items, n_params)
    with targets; rank r takes ``shard(items, r, world_size)`` and computes the gradient of
    its mean squared error. Returns a ``DDPExample``."""
    W = check_int("world_size", world_size, minimum=2)
    N = check_int("n_items", n_items, minimum=1)
    P = check_int("n_params", n_params, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if N % W:
        raise ValueError(f"n_items must be a multiple of world_size = {W}, got {N}")
    g = torch.Generator().manual_seed(seed)
    X, y = torch.randn(N, P, generator=g), torch.randn(N, generator=g)
    w = torch.randn(P, generator=g)

    def gradient(idx: torch.Tensor) -> np.ndarray:
        w_ = w.clone().requires_grad_(True)
        ((X[idx] @ w_ - y[idx]) ** 2).mean().backward()
        return w_.grad.double().numpy()

    shards = [shard(torch.arange(N), r, W) for r in range(W)]
    grads = np.stack([gradient(s) for s in shards])
    return DDPExample(
        [s.tolist() for s in shards], grads, ring_all_reduce(grads), gradient(torch.arange(N))
    )


def _numbers(values: np.ndarray) -> np.ndarray:
    return np.round(values, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


def ddp_diagram(world_size: int = 3, n_items: int = 12, n_params: int = 3, seed: int = 0) -> Figure:
    """W ranks, each with its shard and local gradient, the ring all-reduce, and the
    same mean gradient on every rank (numbers of ``ddp_example``, rounded to 0.01)."""
    ex = ddp_example(world_size, n_items, n_params, seed)
    W, P = ex.gradients.shape
    if W > 4 or P > 4:
        raise ValueError(f"world_size and n_params must be <= 4 to fit, got {W} and {P}")
    fig, ax = canvas(20, 11.6)
    col = 20 / W
    cell = min(1.3, 0.8 * col / P)
    for r in range(W):
        cx = (r + 0.5) * col
        layer_box(ax, (cx - 1.3, 10.0), 2.6, 1.1, f"rank {r}", role="input")
        items = ", ".join(str(i) for i in ex.shards[r])
        ax.text(cx, 9.6, f"items {items}", ha="center", va="top", fontsize=SMALL)
        ax.text(cx, 8.5, f"local gradient g_{r}", ha="center", fontsize=SMALL)
        cell_grid(
            ax,
            (cx - P * cell / 2, 7.0),
            _numbers(ex.gradients[r])[None],
            cell=cell,
            role="tensor",
            fmt="{:.2f}",
            fontsize=SMALL,
        )
        arrow(ax, (cx, 6.9), (cx, 5.9))
        layer_box(ax, (cx - 0.5, 4.9), 1.0, 1.0, str(r), role="merge", fontsize=SMALL)
        arrow(ax, (cx, 4.8), (cx, 3.7))
        cell_grid(
            ax,
            (cx - P * cell / 2, 2.3),
            _numbers(ex.reduced[r])[None],
            cell=cell,
            role="highlight",
            fmt="{:.2f}",
            fontsize=SMALL,
        )
        if r + 1 < W:
            arrow(ax, (cx + 0.6, 5.4), (cx + col - 0.6, 5.4), color=ROLES["attention"][1])
    arrow(
        ax,
        ((W - 0.5) * col, 5.9),
        (0.5 * col, 5.9),
        connection="arc3,rad=0.05",
        color=ROLES["attention"][1],
    )
    total = ex.gradients.sum(0)
    ax.text(
        10,
        4.3,
        f"ring all-reduce: sum {_fmt(total)}, \u00f7 {W}",
        ha="center",
        fontsize=SMALL,
        color=ROLES["attention"][1],
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        zorder=5,
    )
    ax.text(
        10,
        1.7,
        f"every rank: mean gradient {_fmt(ex.reduced[0])}, the same step",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    ax.text(
        10,
        0.8,
        f"(= the gradient of all {n_items} items on one process)",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    return fig


def _fmt(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in _numbers(values)) + ")"


# --------------------------------------------------------------------------- chapter 11


def transfer_modes(model: nn.Module, top_blocks: int) -> dict[str, nn.Module]:
    """Three light copies of ``model`` (sharing its weights, which must not be trained
    through them): feature extraction (``freeze_backbone``), fine-tuning
    (``unfreeze``) and partial (``freeze_backbone(top_blocks=top_blocks)``)."""
    model = check_model(model)
    n = len(backbone_blocks(model))
    top_blocks = check_int("top_blocks", top_blocks, minimum=1)
    if top_blocks >= n:
        raise ValueError(f"top_blocks must be < {n} (the backbone's blocks), got {top_blocks}")
    modes = {}
    for name in ("feature extraction", "fine-tuning", f"partial: top {top_blocks} + head"):
        m = _skeleton_copy(model)
        if name == "fine-tuning":
            unfreeze(m)
        else:
            freeze_backbone(m, top_blocks=0 if name == "feature extraction" else top_blocks)
        modes[name] = m
    return modes


def _skeleton_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose parameters are new ``nn.Parameter`` objects sharing
    the original storage (nothing is cloned), and whose buffers are the original tensors:
    freezing it changes only its own ``requires_grad`` flags and modules. Never train it."""
    memo: dict[int, object] = {id(b): b for b in model.buffers()}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach(), requires_grad=p.requires_grad)
    return copy.deepcopy(model, memo)


def _count(module: nn.Module, *, trainable: bool | None = None) -> int:
    return sum(p.numel() for p in module.parameters() if trainable in (None, p.requires_grad))


def transfer_diagram(model: nn.Module, top_blocks: int = 5) -> Figure:
    """The backbone's blocks and the head, three ways: frozen backbone, all trainable, and
    the top ``top_blocks`` blocks + head trainable. Frozen blocks are grey and locked;
    the counts are those of ``requires_grad`` after the library's freeze functions."""
    modes = transfer_modes(model, top_blocks)
    head = head_name(model)
    n = len(backbone_blocks(model))
    low = backbone_blocks(model)[: n - top_blocks]
    split = (f"{low[0][0]}\u2013{low[-1][0].split('.')[-1]}", f"top {top_blocks} blocks")
    fig, ax = canvas(20, 3.6 * len(modes) + 1.0)
    width = 15.4 / n
    for row, (name, m) in enumerate(modes.items()):
        y = 3.6 * (len(modes) - 1 - row) + 1.8
        blocks = backbone_blocks(m)
        ax.text(0.1, y + 2.1, f"{row + 1}. {name}", fontsize=FONT_SIZE, va="bottom")
        ax.text(
            19.9,
            y + 2.1,
            f"trainable: {_count(m, trainable=True):,}",
            ha="right",
            fontsize=FONT_SIZE,
            va="bottom",
        )
        for i, (_, block) in enumerate(blocks):
            trains = _count(block, trainable=True) > 0
            layer_box(
                ax,
                (0.1 + i * width, y + 0.4),
                0.85 * width,
                1.4,
                role="highlight" if trains else "muted",
            )
        h = m.get_submodule(head)
        layer_box(ax, (16.0, y + 0.4), 3.9, 1.4, f"head {head}", role="highlight", fontsize=SMALL)
        for (lo, hi), label in zip(((0, n - top_blocks), (n - top_blocks, n)), split, strict=True):
            part = [b for _, b in blocks[lo:hi]]
            frozen = all(_count(b, trainable=True) == 0 for b in part)
            centre = 0.1 + (lo + hi) / 2 * width
            if frozen:
                _lock(ax, centre, y + 1.1)
            state = "locked" if frozen else "trainable"
            count = sum(_count(b) for b in part)
            ax.text(
                centre,
                y + 0.25,
                f"{label}\n{count:,} params, {state}",
                ha="center",
                va="top",
                fontsize=SMALL,
            )
        ax.text(17.95, y + 0.25, f"{_count(h):,} params", ha="center", va="top", fontsize=SMALL)
    ax.add_patch(_key(0.1, 0.1, "highlight"))
    ax.text(0.7, 0.35, "trains", va="center", fontsize=SMALL)
    ax.add_patch(_key(2.6, 0.1, "muted"))
    _lock(ax, 3.5, 0.35)
    ax.text(
        4.0,
        0.35,
        "frozen: requires_grad=False, BatchNorm held in eval mode",
        va="center",
        fontsize=SMALL,
    )
    return fig


def _lock(ax: Axes, x: float, y: float) -> None:
    """A small padlock centred at (x, y): the sign of a frozen part."""
    edge = "#333333"
    ax.add_patch(
        Rectangle(
            (x - 0.3, y - 0.3), 0.6, 0.45, facecolor="#FFFFFF", edgecolor=edge, lw=1.2, zorder=4
        )
    )
    ax.add_patch(Arc((x, y + 0.15), 0.4, 0.5, theta1=0, theta2=180, color=edge, lw=1.4, zorder=4))


def _key(x: float, y: float, role: str) -> Rectangle:
    return Rectangle((x, y), 0.5, 0.5, facecolor=fill(role), edgecolor=ROLES[role][1])


# --------------------------------------------------------------------------- chapter 17


def _embed(
    net: nn.Module, images: list[tuple[str, object]]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    net = check_model(net)
    xs = [_image(name, x) for name, x in images]
    with eval_mode(net), torch.no_grad():
        zs = [net(x) for x in xs]
    for (name, _), z in zip(images, zs, strict=True):
        if z.ndim != 2 or z.shape[0] != 1:
            raise ValueError(f"net must map {name} to one embedding (1, D), got {tuple(z.shape)}")
    return xs, zs


def _branches(
    ax: Axes,
    net: nn.Module,
    xs: list[torch.Tensor],
    zs: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    ys: tuple[float, ...],
) -> None:
    """Inputs, one box per call of the shared network, and the embeddings, one row each."""
    n_params = sum(p.numel() for p in net.parameters())
    for x, z, name, y in zip(xs, zs, names, ys, strict=True):
        _thumbnail(ax, x[0], (0.7, y), 1.6)
        ax.text(
            1.5, y - 0.1, f"x_{name}: {_shape(x.shape[1:])}", ha="center", va="top", fontsize=SMALL
        )
        arrow(ax, (2.4, y + 0.8), (3.1, y + 0.8))
        layer_box(
            ax, (3.2, y + 0.2), 3.8, 1.2, f"f = {type(net).__name__}", role="linear", fontsize=SMALL
        )
        arrow(ax, (7.1, y + 0.8), (8.1, y + 0.8))
        layer_box(
            ax, (8.2, y + 0.3), 2.0, 1.0, f"z_{name}: {z.shape[1]}", role="tensor", fontsize=SMALL
        )
    for y0, y1 in zip(ys, ys[1:], strict=False):
        ax.plot([5.1, 5.1], [y0 + 0.2, y1 + 1.4], ls="--", color="#555555", lw=1.0)
    ax.text(
        5.1,
        max(ys) + 2.0,
        f"one network, shared weights ({n_params:,} parameters)",
        ha="center",
        fontsize=SMALL,
    )


def siamese_diagram(
    net: nn.Module, x1: torch.Tensor, x2: torch.Tensor, same: bool, margin: float = 1.0
) -> Figure:
    """Two images through one shared embedding network f, the distance of the embeddings,
    and the contrastive loss of the pair with ``cnnbook.metric_learning.contrastive_loss``.

    x1, x2: (C, H, W) or (1, C, H, W); same: whether they show the same class.
    """
    if not isinstance(same, bool):
        raise TypeError(f"same must be a bool, got {type(same).__name__}")
    xs, (z1, z2) = _embed(net, [("x1", x1), ("x2", x2)])
    label = torch.tensor([float(same)])
    loss = float(contrastive_loss(z1, z2, label, margin=margin))
    d = float((z1 - z2).norm())
    fig, ax = canvas(20, 7.0)
    _branches(ax, net, xs, (z1, z2), ("1", "2"), (3.8, 0.8))
    arrow(ax, (10.3, 4.9), (11.4, 3.9))
    arrow(ax, (10.3, 1.9), (11.4, 2.9))
    layer_box(
        ax,
        (11.5, 2.7),
        3.0,
        1.4,
        f"d = \u2016z_1 \u2212 z_2\u2016\n= {d:.3f}",
        role="merge",
        fontsize=SMALL,
    )
    arrow(ax, (14.6, 3.4), (15.3, 3.4))
    y = 1 if same else 0
    layer_box(
        ax,
        (15.4, 2.2),
        4.5,
        2.4,
        f"contrastive loss\ny = {y}, m = {margin:g}\nL = {loss:.3f}",
        role="output",
        fontsize=SMALL,
    )
    ax.text(
        17.65,
        1.9,
        "L = y d\u00b2 +\n(1 \u2212 y) max(0, m \u2212 d)\u00b2",
        ha="center",
        va="top",
        fontsize=SMALL,
    )
    return fig


def triplet_diagram(
    net: nn.Module,
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 1.0,
) -> Figure:
    """Anchor, positive and negative through one shared network f, the distances d(a, p)
    and d(a, n), and ``cnnbook.metric_learning.triplet_loss`` with ``margin``."""
    xs, (za, zp, zn) = _embed(
        net, [("anchor", anchor), ("positive", positive), ("negative", negative)]
    )
    loss = float(triplet_loss(za, zp, zn, margin=margin))
    d_ap, d_an = float((za - zp).norm()), float((za - zn).norm())
    fig, ax = canvas(20, 9.6)
    _branches(ax, net, xs, (za, zp, zn), ("a", "p", "n"), (6.4, 3.6, 0.8))
    layer_box(ax, (11.3, 5.3), 3.2, 1.2, f"d(a, p) = {d_ap:.3f}", role="merge", fontsize=SMALL)
    layer_box(ax, (11.3, 2.5), 3.2, 1.2, f"d(a, n) = {d_an:.3f}", role="merge", fontsize=SMALL)
    for y_from, y_to in ((7.2, 6.1), (4.4, 5.7), (7.2, 3.3), (1.6, 2.9)):
        arrow(ax, (10.3, y_from), (11.2, y_to))
    arrow(ax, (14.6, 5.9), (15.4, 4.9))
    arrow(ax, (14.6, 3.1), (15.4, 4.1))
    layer_box(
        ax,
        (15.5, 3.3),
        4.4,
        2.4,
        f"triplet loss\nm = {margin:g}\nL = {loss:.3f}",
        role="output",
        fontsize=SMALL,
    )
    ax.text(17.7, 3.0, "max(0, d(a, p) \u2212\nd(a, n) + m)", ha="center", va="top", fontsize=SMALL)
    return fig
