"""The ConvNeXt block (Liu et al., 2022): a ResNet block modernised step by step.

Starting from ResNet-50 and borrowing design choices from vision transformers, the
paper arrives at this block (x: (N, C, H, W)):

1. a 7x7 **depthwise** convolution (large kernel, one filter per channel, like the
   spatial mixing of attention but local);
2. **LayerNorm** over the channels at each position (instead of BatchNorm);
3. an **inverted bottleneck** MLP: 1x1 (as a linear layer) C -> 4C, **GELU**, 4C -> C;
   one activation and one normalisation per block, as in a transformer;
4. **layer scale**: the branch is multiplied by a learnable per-channel gamma that
   starts tiny (1e-6), so each block begins close to the identity;
5. **stochastic depth**: in training, the whole branch is dropped for a random subset
   of the samples;

and adds the input back: ``y = x + drop_path(gamma * F(x))``. The linear layers run on
channels-last tensors (N, H, W, C), where a 1x1 convolution is just ``nn.Linear``.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_int, check_probability

__all__ = ["ConvNeXtBlock", "drop_path"]


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth. x: (N, ...) -> x with whole samples zeroed with probability p.

    Survivors are divided by ``1 - p`` so the expected value is unchanged; in eval mode
    (``training=False``) or with p = 0 this is the identity.
    """
    p = check_probability("p", p)
    if not training or p == 0:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= p
    return x * keep.to(x.dtype) / (1 - p)


class ConvNeXtBlock(nn.Module):
    """x: (N, C, H, W) -> (N, C, H, W), ``x + drop_path(gamma * F(x))``.

    C: channels; layer_scale: gamma's initial value (None: no layer scale);
    drop_path_prob: stochastic depth rate in training; expansion: MLP width factor.
    """

    def __init__(
        self,
        C: int,
        *,
        layer_scale: float | None = 1e-6,
        drop_path_prob: float = 0.0,
        expansion: int = 4,
    ):
        super().__init__()
        C = check_int("C", C, minimum=1)
        expansion = check_int("expansion", expansion, minimum=1)
        self.drop_path_prob = check_probability("drop_path_prob", drop_path_prob)
        if layer_scale is None:
            self.gamma = None
        elif isinstance(layer_scale, bool) or not isinstance(layer_scale, (int, float)):
            raise TypeError(f"layer_scale must be a float or None, got {layer_scale!r}")
        elif layer_scale <= 0:
            raise ValueError(f"layer_scale must be > 0, got {layer_scale}")
        else:  # (C, 1, 1): scales the branch channel by channel in NCHW
            self.gamma = nn.Parameter(torch.full((C, 1, 1), float(layer_scale)))
        self.dwconv = nn.Conv2d(C, C, 7, padding=3, groups=C)  # spatial mixing per channel
        self.norm = nn.LayerNorm(C, eps=1e-6)  # over channels, at each position
        self.fc1 = nn.Linear(C, expansion * C)  # = 1x1 conv on (N, H, W, C)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(expansion * C, C)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), before layer scale. x: (N, C, H, W) -> (N, C, H, W)."""
        out = self.dwconv(x)
        out = out.permute(0, 2, 3, 1)  # (N, H, W, C): channels last for LayerNorm/Linear
        out = self.fc2(self.act(self.fc1(self.norm(out))))  # (N, H, W, 4C) -> (N, H, W, C)
        return out.permute(0, 3, 1, 2)  # back to (N, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        if self.gamma is not None:
            out = self.gamma * out
        return x + drop_path(out, self.drop_path_prob, self.training)
