"""Vision transformer tensor functions written from scratch (chapter 18).

A vision transformer (ViT; Dosovitskiy et al., 2021) cuts an image into p x p patches,
maps each flattened patch to a vector (a **token**) with one linear layer, adds a
learned position embedding, and lets a stack of transformer blocks mix the tokens with
**self-attention**. Nothing in it knows that neighbouring pixels belong together: the
locality and weight sharing that a CNN has built in must be learned from data.

- ``patchify`` / ``unpatchify``: (N, C, H, W) <-> (N, L, C * p * p) with L = (H/p)(W/p).
- ``attention``: scaled dot-product attention.
- ``window_partition`` / ``window_reverse`` and ``shifted_window_mask``: the local
  M x M windows of the Swin Transformer (Liu et al., 2021).

The networks built on them (``PatchEmbedding``, ``MultiHeadSelfAttention``,
``TransformerBlock``, ``ViT``) are in ``cnnbook.models.vit``.
"""

from __future__ import annotations

import math

import torch

from cnnbook._checks import check_int

__all__ = [
    "attention",
    "patchify",
    "shifted_window_mask",
    "unpatchify",
    "window_partition",
    "window_reverse",
]


def _check_tensor(name: str, value: object, ndim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}")
    return value


def _check_divides(name: str, size: int, what: str, by: int) -> None:
    if size % by != 0:
        raise ValueError(f"{name}={by} must divide the {what} {size}")


# --------------------------------------------------------------------------- patches


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into non-overlapping patches. x: (N, C, H, W) -> (N, L, C * p * p).

    L = (H / p) * (W / p) patches in row-major order (left to right, then down); each
    patch is flattened channel first, as (C, p, p), the layout of a Conv2d weight.
    H and W must be multiples of ``patch``.
    """
    x = _check_tensor("x", x, 4)
    p = check_int("patch", patch, minimum=1)
    N, C, H, W = x.shape
    _check_divides("patch", H, "image height", p)
    _check_divides("patch", W, "image width", p)
    x = x.reshape(N, C, H // p, p, W // p, p)  # split each axis into (which patch, offset)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (N, H/p, W/p, C, p, p)
    return x.reshape(N, (H // p) * (W // p), C * p * p)


def unpatchify(tokens: torch.Tensor, patch: int, H: int, W: int) -> torch.Tensor:
    """The inverse of ``patchify``. tokens: (N, L, C * p * p) -> (N, C, H, W)."""
    tokens = _check_tensor("tokens", tokens, 3)
    p = check_int("patch", patch, minimum=1)
    H, W = check_int("H", H, minimum=1), check_int("W", W, minimum=1)
    _check_divides("patch", H, "image height", p)
    _check_divides("patch", W, "image width", p)
    N, L, D = tokens.shape
    if L != (H // p) * (W // p) or D % (p * p) != 0:
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not fit H={H}, W={W}, patch={p}"
        )
    C = D // (p * p)
    x = tokens.reshape(N, H // p, W // p, C, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(N, C, H, W)


# --------------------------------------------------------------------------- attention


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention. q: (..., L, d), k: (..., S, d), v: (..., S, d_v).

    mask: None or an additive float mask broadcastable to (..., L, S) (0 keeps a pair,
    -inf removes it). Returns ``out: (..., L, d_v)`` and the weights ``(..., L, S)``,
    each row a probability distribution over the S keys.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.ndim < 2:
            raise TypeError(f"{name} must be a torch.Tensor with at least 2 dimensions")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last size, got {q.shape[-1]}, {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must hold as many keys, got {k.shape[-2]}, {v.shape[-2]}")
    # Dividing by sqrt(d) keeps the scores' variance near 1, so softmax does not saturate.
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., L, S)
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


# --------------------------------------------------------------------------- Swin windows


def window_partition(x: torch.Tensor, M: int) -> torch.Tensor:
    """Cut a channels-last map into M x M windows. x: (N, H, W, C) -> (N * nW, M * M, C).

    nW = (H / M) * (W / M) windows per image, in row-major order; the positions inside a
    window are row-major too. H and W must be multiples of M.
    """
    x = _check_tensor("x", x, 4)
    M = check_int("M", M, minimum=1)
    N, H, W, C = x.shape
    _check_divides("M", H, "map height", M)
    _check_divides("M", W, "map width", M)
    x = x.reshape(N, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5)  # (N, H/M, W/M, M, M, C)
    return x.reshape(N * (H // M) * (W // M), M * M, C)


def window_reverse(windows: torch.Tensor, M: int, H: int, W: int) -> torch.Tensor:
    """The inverse of ``window_partition``. windows: (N * nW, M * M, C) -> (N, H, W, C)."""
    windows = _check_tensor("windows", windows, 3)
    M = check_int("M", M, minimum=1)
    H, W = check_int("H", H, minimum=1), check_int("W", W, minimum=1)
    _check_divides("M", H, "map height", M)
    _check_divides("M", W, "map width", M)
    n_windows = (H // M) * (W // M)
    B, MM, C = windows.shape
    if MM != M * M or B % n_windows != 0:
        raise ValueError(f"windows of shape {tuple(windows.shape)} do not fit M={M}, H={H}, W={W}")
    x = windows.reshape(B // n_windows, H // M, W // M, M, M, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B // n_windows, H, W, C)


def shifted_window_mask(H: int, W: int, M: int, shift: int) -> torch.Tensor:
    """Additive attention mask for Swin's shifted windows: (nW, M * M, M * M) of 0 / -inf.

    After the map is rolled by (-shift, -shift), a window at the border holds pixels that
    were far apart in the image (the roll wrapped them around). Pixels from different
    regions of the unrolled map must not attend to each other: their pairs get -inf.
    """
    H, W = check_int("H", H, minimum=1), check_int("W", W, minimum=1)
    M = check_int("M", M, minimum=1)
    shift = check_int("shift", shift, minimum=0)
    if shift >= M:
        raise ValueError(f"shift must be smaller than the window size M={M}, got {shift}")
    _check_divides("M", H, "map height", M)
    _check_divides("M", W, "map width", M)
    region = torch.zeros(1, H, W, 1)
    bands = ((0, -M), (-M, -shift), (-shift, None)) if shift else ((0, None),)
    label = 0
    for h0, h1 in bands:  # 3 x 3 regions: the bulk, the last window row, the wrapped strip
        for w0, w1 in bands:
            region[:, h0:h1, w0:w1] = label
            label += 1
    ids = window_partition(region, M).squeeze(-1)  # (nW, M * M) region of every position
    same = ids[:, :, None] == ids[:, None, :]  # (nW, M * M, M * M)
    return torch.zeros(same.shape).masked_fill(~same, float("-inf"))
