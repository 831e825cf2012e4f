"""A small vision transformer and its blocks (chapter 18), written from scratch.

- ``PatchEmbedding``: ``cnnbook.vit.patchify`` + Linear, which is exactly a Conv2d with
  kernel = stride = p; ``to_conv()`` and ``PatchEmbedding.from_conv()`` convert the
  weights both ways. x: (N, C, H, W) -> tokens (N, L, dim).
- ``MultiHeadSelfAttention``: ``cnnbook.vit.attention`` per head, with the weights laid
  out as in ``nn.MultiheadAttention`` (``copy_from`` takes them over).
- ``TransformerBlock`` (pre-norm) and ``ViT`` (cls token or mean pooling).

The tensor functions they use (patches, attention, Swin windows) are in ``cnnbook.vit``.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_choice, check_int
from cnnbook.vit import _check_divides, _check_tensor, attention, patchify

__all__ = ["MultiHeadSelfAttention", "PatchEmbedding", "TransformerBlock", "ViT"]


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
