"""Vision transformer pieces written from scratch (chapter 18).

A vision transformer (ViT; Dosovitskiy et al., 2021) cuts an image into p x p patches,
maps each flattened patch to a vector (a **token**) with one linear layer, adds a
learned position embedding, and lets a stack of transformer blocks mix the tokens with
**self-attention**. Nothing in it knows that neighbouring pixels belong together: the
locality and weight sharing that a CNN has built in must be learned from data.

- ``patchify`` / ``unpatchify``: (N, C, H, W) <-> (N, L, C * p * p) with L = (H/p)(W/p).
- ``PatchEmbedding``: patchify + Linear, which is exactly a Conv2d with kernel = stride
  = p; ``to_conv()`` and ``PatchEmbedding.from_conv()`` convert the weights both ways.
- ``attention`` and ``MultiHeadSelfAttention``: scaled dot-product attention, with the
  weights laid out as in ``nn.MultiheadAttention`` (``copy_from`` takes them over).
- ``TransformerBlock`` (pre-norm) and ``ViT`` (cls token or mean pooling).
- ``window_partition`` / ``window_reverse`` and ``shifted_window_mask``: the local
  M x M windows of the Swin Transformer (Liu et al., 2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnbook._checks import check_choice, check_int

__all__ = [
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "TransformerBlock",
    "ViT",
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


class PatchEmbedding(nn.Module):
    """Patchify, then one Linear layer. x: (N, C_in, H, W) -> tokens (N, L, dim).

    The same linear map is applied to every patch, at a stride of one patch: that is a
    convolution with kernel_size = stride = patch, written as a matrix product.
    """

    def __init__(self, C_in: int, dim: int, patch: int):
        super().__init__()
        self.C_in = check_int("C_in", C_in, minimum=1)
        self.dim = check_int("dim", dim, minimum=1)
        self.patch = check_int("patch", patch, minimum=1)
        self.proj = nn.Linear(self.C_in * self.patch**2, self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4 and x.shape[1] != self.C_in:
            raise ValueError(f"x must have {self.C_in} channels, got shape {tuple(x.shape)}")
        return self.proj(patchify(x, self.patch))

    def to_conv(self) -> nn.Conv2d:
        """An nn.Conv2d(C_in, dim, kernel_size=patch, stride=patch) with the same weights.

        Its output (N, dim, H/p, W/p), flattened to (N, L, dim), equals ``forward``.
        """
        p = self.patch
        conv = nn.Conv2d(self.C_in, self.dim, kernel_size=p, stride=p)
        with torch.no_grad():
            # Linear weight (dim, C*p*p) is each filter flattened in (C, p, p) order.
            conv.weight.copy_(self.proj.weight.reshape(self.dim, self.C_in, p, p))
            conv.bias.copy_(self.proj.bias)
        return conv

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> PatchEmbedding:
        """The PatchEmbedding equal to ``conv``, a biased Conv2d with kernel = stride = p."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        k, s = conv.kernel_size, conv.stride
        if k[0] != k[1] or s != k:
            raise ValueError(f"conv must have a square kernel equal to its stride, got k={k} s={s}")
        if conv.padding not in ((0, 0), "valid") or conv.dilation != (1, 1) or conv.groups != 1:
            raise ValueError("conv must have padding 0, dilation 1 and groups 1")
        if conv.bias is None:
            raise ValueError("conv must have a bias (PatchEmbedding's Linear has one)")
        embed = cls(conv.in_channels, conv.out_channels, k[0])
        with torch.no_grad():
            embed.proj.weight.copy_(conv.weight.reshape(conv.out_channels, -1))
            embed.proj.bias.copy_(conv.bias)
        return embed


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


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention. x: (N, L, dim) -> (N, L, dim).

    One Linear makes queries, keys and values for all heads at once (weights in the
    order q, k, v, as ``nn.MultiheadAttention.in_proj_weight``); each of the ``heads``
    heads attends in its own dim / heads sized subspace; ``proj`` mixes the heads.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=1)
        self.heads = check_int("heads", heads, minimum=1)
        _check_divides("heads", self.dim, "dim", self.heads)
        self.qkv = nn.Linear(self.dim, 3 * self.dim)
        self.proj = nn.Linear(self.dim, self.dim)
        self.last_weights: torch.Tensor | None = None  # (N, heads, L, L) of the last call

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, L, dim); mask: additive, broadcastable to (N, heads, L, L)."""
        x = _check_tensor("x", x, 3)
        N, L, D = x.shape
        if D != self.dim:
            raise ValueError(f"x must have {self.dim} features, got shape {tuple(x.shape)}")
        d_head = D // self.heads
        qkv = self.qkv(x).reshape(N, L, 3, self.heads, d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, L, d_head)
        out, weights = attention(q, k, v, mask)
        self.last_weights = weights.detach()
        out = out.transpose(1, 2).reshape(N, L, D)  # heads side by side again
        return self.proj(out)

    def copy_from(self, mha: nn.MultiheadAttention) -> MultiHeadSelfAttention:
        """Take over the weights of a biased ``nn.MultiheadAttention(dim, heads)``; returns self."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be an nn.MultiheadAttention, got {type(mha).__name__}")
        if mha.embed_dim != self.dim or mha.num_heads != self.heads:
            raise ValueError(
                f"mha has embed_dim={mha.embed_dim}, num_heads={mha.num_heads}; "
                f"expected {self.dim}, {self.heads}"
            )
        if mha.in_proj_weight is None or mha.in_proj_bias is None:
            raise ValueError("mha must use a packed, biased input projection (the default)")
        with torch.no_grad():
            self.qkv.weight.copy_(mha.in_proj_weight)
            self.qkv.bias.copy_(mha.in_proj_bias)
            self.proj.weight.copy_(mha.out_proj.weight)
            self.proj.bias.copy_(mha.out_proj.bias)
        return self


class TransformerBlock(nn.Module):
    """Pre-norm transformer block. x: (N, L, dim) -> (N, L, dim).

    ``x = x + attn(norm1(x))``, then ``x = x + mlp(norm2(x))`` with a GELU MLP of width
    ``mlp_ratio * dim``. Normalising before each branch keeps the residual path clean,
    which makes deep stacks train without warm-up tricks.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        dim = check_int("dim", dim, minimum=1)
        mlp_ratio = check_int("mlp_ratio", mlp_ratio, minimum=1)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small vision transformer. x: (N, C_in, H, W) -> logits (N, num_classes).

    Patch embedding -> (+ cls token) -> + learned position embedding -> ``depth``
    pre-norm blocks -> LayerNorm -> pool -> Linear. ``pool="cls"`` classifies from an
    extra learned token prepended to the sequence; ``pool="mean"`` averages all tokens.
    """

    def __init__(
        self,
        image_size: int,
        patch: int,
        C_in: int,
        num_classes: int,
        *,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: int = 2,
        pool: str = "cls",
    ):
        super().__init__()
        image_size = check_int("image_size", image_size, minimum=1)
        patch = check_int("patch", patch, minimum=1)
        _check_divides("patch", image_size, "image_size", patch)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        depth = check_int("depth", depth, minimum=1)
        self.pool = check_choice("pool", pool, ("cls", "mean"))
        self.image_size = image_size
        self.embed = PatchEmbedding(C_in, dim, patch)
        self.num_patches = (image_size // patch) ** 2
        n_tokens = self.num_patches + (pool == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        # Learned positions: without them attention treats the patches as an unordered set.
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with position embeddings. x: (N, C, H, W) -> (N, L (+1), dim)."""
        x = _check_tensor("x", x, 4)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"x must be {self.image_size} x {self.image_size}, got shape {tuple(x.shape)}"
            )
        t = self.embed(x)  # (N, L, dim)
        if self.cls_token is not None:
            t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], dim=1)  # (N, L + 1, dim)
        return t + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tokens(x)
        for block in self.blocks:
            t = block(t)
        t = self.norm(t)
        pooled = t[:, 0] if self.pool == "cls" else t.mean(dim=1)  # (N, dim)
        return self.head(pooled)


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
