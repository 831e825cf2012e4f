"""Diagrams of a vision transformer's first steps (chapter 18).

- ``patch_embedding``: an image cut into P x P patches, each flattened and mapped by one
  Linear layer to a D-vector, then the class token and the position embeddings; every
  shape is read from a forward pass of a ``cnnbook.models.vit.ViT``.
- ``patch_attention``: one query patch attending to all patches. The weights
  (``patch_attention_weights``) come from ``cnnbook.vit.attention`` on patch tokens made
  by a seeded ``PatchEmbedding``: a small, real attention computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from cnnbook._checks import check_int
from cnnbook.diagrams.style import FONT_SIZE, ROLES, arrow, canvas, layer_box
from cnnbook.models.vit import PatchEmbedding, ViT
from cnnbook.vit import attention, patchify

__all__ = ["patch_attention", "patch_attention_weights", "patch_embedding"]

_SMALL = FONT_SIZE - 1


def _check_image(image: object) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor (C, H, W), got {type(image).__name__}")
    if image.ndim != 3 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float tensor (C, H, W), got {image.dtype} {tuple(image.shape)}"
        )
    return image.detach().cpu().float()


def _show_image(ax: Axes, image: torch.Tensor, extent: tuple[float, float, float, float]) -> None:
    picture = image.permute(1, 2, 0).clamp(0, 1).numpy()
    ax.imshow(picture.squeeze(), extent=extent, cmap="gray", interpolation="antialiased", zorder=0)


def _patch_grid(ax: Axes, extent: tuple[float, float, float, float], rows: int, cols: int) -> None:
    x0, x1, y0, y1 = extent
    for k in range(cols + 1):
        ax.plot([x0 + k * (x1 - x0) / cols] * 2, [y0, y1], color="white", lw=1.0)
    for k in range(rows + 1):
        ax.plot([x0, x1], [y0 + k * (y1 - y0) / rows] * 2, color="white", lw=1.0)


def patch_embedding(model: ViT, image: torch.Tensor, *, shown: int = 3) -> Figure:
    """From image to tokens: patches, flattened, projected, plus class token and positions.

    model: a ``ViT`` whose ``image_size`` and ``C_in`` fit ``image`` (C, H, W), values in
    [0, 1]; shown: how many patches are drawn flattened (the rest are elided). Every
    shape label comes from running ``patchify``, ``model.embed`` and ``model.tokens``.
    """
    if not isinstance(model, ViT):
        raise TypeError(f"model must be a cnnbook.models.vit.ViT, got {type(model).__name__}")
    image = _check_image(image)
    P, C = model.embed.patch, model.embed.C_in
    if tuple(image.shape) != (C, model.image_size, model.image_size):
        raise ValueError(
            f"image must be ({C}, {model.image_size}, {model.image_size}) for this model, "
            f"got {tuple(image.shape)}"
        )
    with torch.no_grad():
        patches = patchify(image[None], P)[0]  # (L, C P^2)
        embedded = model.embed(image[None])[0]  # (L, D)
        tokens = model.tokens(image[None])[0]  # (L (+1), D)
    L, D_patch = patches.shape
    D = embedded.shape[1]
    shown = check_int("shown", shown, minimum=1)
    if shown > min(L, 4):
        raise ValueError(f"shown must be at most {min(L, 4)} (patches drawn), got {shown}")
    has_cls = model.cls_token is not None
    rows = (["[cls]"] if has_cls else []) + [f"patch {k}" for k in range(shown)]
    if shown < L:
        rows += ["⋮", f"patch {L - 1}"]
    row_h, side = 1.0, 5.0
    height = max(side, len(rows) * row_h) + 1.4
    fig, ax = canvas(20.5, height)
    top = height - 1.2
    y_img = top - side
    _show_image(ax, image, (0, side, y_img, top))
    n_side = model.image_size // P
    _patch_grid(ax, (0, side, y_img, top), n_side, n_side)
    ax.text(
        side / 2,
        top + 0.55,
        f"{model.image_size}×{model.image_size}, {L} patches",
        ha="center",
        va="center",
        fontsize=_SMALL,
    )
    cell = side / n_side
    x_strip, strip_w = side + 1.9, 4.0
    x_lin, x_tok, x_pos = x_strip + strip_w + 0.9, x_strip + strip_w + 3.1, 17.1
    ax.text(
        x_strip + strip_w / 2,
        top + 0.55,
        f"flattened: {C}·{P}·{P} = {D_patch}",
        ha="center",
        va="center",
        fontsize=_SMALL,
    )
    ax.text(
        x_tok + 1.2,
        top + 0.55,
        f"tokens ({tokens.shape[0]}, {tokens.shape[1]})",
        ha="center",
        va="center",
        fontsize=_SMALL,
    )
    pos_label = "+ position"
    ax.text(x_pos + 1.3, top + 0.55, pos_label, ha="center", va="center", fontsize=_SMALL)
    _, edge = ROLES["highlight"]
    for r, name in enumerate(rows):
        y = top - (r + 1) * row_h + 0.15
        if name == "⋮":
            ax.text(x_strip + strip_w / 2, y + 0.35, "⋮", ha="center", va="center", fontsize=_SMALL)
            continue
        if name.startswith("patch"):
            k = int(name.split()[1])
            i, j = divmod(k, n_side)
            ax.add_patch(
                Rectangle(
                    (j * cell, top - (i + 1) * cell),
                    cell,
                    cell,
                    fill=False,
                    ec=edge,
                    lw=2.0,
                    zorder=3,
                )
            )
            strip = patches[k].reshape(C, P * P).T.clamp(0, 1).numpy()[None]  # (1, P*P, C)
            ax.imshow(
                strip.squeeze(-1) if C == 1 else strip,
                cmap="gray",
                aspect="auto",
                extent=(x_strip, x_strip + strip_w, y, y + 0.7),
                zorder=1,
            )
            ax.add_patch(Rectangle((x_strip, y), strip_w, 0.7, fill=False, ec="#555555", lw=0.8))
            ax.text(x_strip - 0.15, y + 0.35, name, ha="right", va="center", fontsize=_SMALL - 1)
            arrow(ax, (x_strip + strip_w + 0.05, y + 0.35), (x_lin, y + 0.35))
            role = "linear"
        else:
            ax.text(
                x_lin + 0.6, y + 0.35, "class token", ha="center", va="center", fontsize=_SMALL - 1
            )
            role = "attention"
        layer_box(ax, (x_tok, y), 2.4, 0.7, f"{D}-vector", role=role, fontsize=_SMALL - 1)
        position = int(name.split()[1]) + has_cls if name.startswith("patch") else 0
        layer_box(ax, (x_pos, y), 2.6, 0.7, f"+ pos {position}", role="norm", fontsize=_SMALL - 1)
    first = top - (1 + has_cls) * row_h + 0.15
    last = top - len(rows) * row_h + 0.15
    layer_box(
        ax,
        (x_lin, last),
        1.2,
        first - last + 0.7,
        f"Linear {D_patch} → {D}",
        role="linear",
        fontsize=_SMALL - 1,
        rotate=True,
    )
    for r in range(len(rows)):
        if rows[r] != "⋮":
            y = top - (r + 1) * row_h + 0.15 + 0.35
            start = x_lin + 1.2 if rows[r].startswith("patch") else x_lin + 1.35
            arrow(ax, (start, y), (x_tok, y))
    ax.set_xlim(-1.4, 20.5)
    ax.set_ylim(0, height)
    return fig


def patch_attention_weights(
    image: torch.Tensor, patch: int, query: int, *, dim: int = 16, seed: int = 0
) -> torch.Tensor:
    """Attention weights (L,) of patch ``query`` over all L patches of image (C, H, W).

    The image is standardised per channel, cut into patches and embedded by a
    ``PatchEmbedding(C, dim, patch)`` initialised from ``seed``; each token is
    layer-normalised and serves as its own query, key and value (W_Q = W_K = W_V = I), so
    ``cnnbook.vit.attention`` weighs patches by how alike their embeddings point.
    """
    image = _check_image(image)
    p = check_int("patch", patch, minimum=1)
    dim = check_int("dim", dim, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    C, H, W = image.shape
    if H % p or W % p:
        raise ValueError(f"patch={p} must divide the image size {H} x {W}")
    L = (H // p) * (W // p)
    query = check_int("query", query, minimum=0)
    if query >= L:
        raise ValueError(f"query must be a patch index below {L}, got {query}")
    std = image.std(dim=(1, 2), keepdim=True).clamp(min=1e-6)
    x = (image - image.mean(dim=(1, 2), keepdim=True)) / std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embed = PatchEmbedding(C, dim, p)
    with torch.no_grad():
        tokens = F.layer_norm(embed(x[None])[0], (dim,))  # (L, dim)
        _, weights = attention(tokens[query : query + 1], tokens, tokens)  # (1, L)
    return weights[0]


def patch_attention(
    image: torch.Tensor, patch: int, query: int, *, dim: int = 16, seed: int = 0
) -> Figure:
    """One query patch attending to every patch: the photo and the weight of each patch.

    Left: image (C, H, W) with its patch grid, the query outlined, and patches veiled in
    proportion to how little attention they get; right: every weight, in per cent.
    Arguments as ``patch_attention_weights``, which computes the weights drawn.
    """
    weights = patch_attention_weights(image, patch, query, dim=dim, seed=seed)
    image = _check_image(image)
    C, H, W = image.shape
    rows, cols = H // patch, W // patch
    if rows * cols > 36:
        raise ValueError(
            f"at most 36 patches can be labelled, got {rows} x {cols}; use a larger patch"
        )
    side_w, side_h = 6.0, 6.0 * H / W
    gap = 1.0
    fig, ax = canvas(2 * side_w + gap, side_h + 1.0)
    _show_image(ax, image, (0, side_w, 0, side_h))
    cw, ch = side_w / cols, side_h / rows
    grid = weights.reshape(rows, cols).numpy()
    strongest = float(grid.max())
    _, edge = ROLES["highlight"]
    qi, qj = divmod(query, cols)
    for i in range(rows):
        for j in range(cols):
            y = side_h - (i + 1) * ch
            veil = 0.7 * (1 - (grid[i, j] / strongest) ** 0.5)  # sqrt: small weights stay visible
            ax.add_patch(Rectangle((j * cw, y), cw, ch, facecolor="white", alpha=veil, lw=0))
            ax.add_patch(
                Rectangle(
                    (side_w + gap + j * cw, y),
                    cw,
                    ch,
                    facecolor=edge,
                    alpha=0.85 * grid[i, j] / strongest,
                    lw=0,
                )
            )
            ax.add_patch(
                Rectangle((side_w + gap + j * cw, y), cw, ch, fill=False, ec="#555555", lw=0.8)
            )
            ax.text(
                side_w + gap + (j + 0.5) * cw,
                y + ch / 2,
                f"{grid[i, j]:.1%}",
                ha="center",
                va="center",
                fontsize=_SMALL - 1,
            )
    for x0 in (0.0, side_w + gap):
        ax.add_patch(
            Rectangle(
                (x0 + qj * cw, side_h - (qi + 1) * ch),
                cw,
                ch,
                fill=False,
                ec=edge,
                lw=2.6,
                zorder=4,
            )
        )
    _patch_grid(ax, (0, side_w, 0, side_h), rows, cols)
    ax.text(
        side_w / 2,
        side_h + 0.5,
        f"query: patch {query} of {rows * cols}",
        ha="center",
        va="center",
        fontsize=_SMALL,
    )
    ax.text(
        side_w + gap + side_w / 2,
        side_h + 0.5,
        f"softmax weights, sum {float(weights.sum()):.3f}",
        ha="center",
        va="center",
        fontsize=_SMALL,
    )
    return fig
