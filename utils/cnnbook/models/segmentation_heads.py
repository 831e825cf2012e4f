"""Segmentation heads on a backbone's feature map: an FCN head and DeepLab's ASPP.

features: (N, C_in, h, w) -> (N, C_out or K, h, w); see each class (chapter 16).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnbook._checks import check_int

__all__ = ["ASPP", "FCNHead"]


class FCNHead(nn.Module):
    """FCN-style head: classify each position of a coarse feature map, then upsample.

    features: (N, C_in, h, w) -> logits (N, num_classes, h, w), or (N, num_classes, *size)
    when ``size`` is given to ``forward`` (bilinear upsampling, as in FCN-32s).
    """

    def __init__(self, C_in: int, num_classes: int, *, hidden: int | None = None) -> None:
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        hidden = max(C_in // 4, 1) if hidden is None else check_int("hidden", hidden, minimum=1)
        self.body = nn.Sequential(
            nn.Conv2d(C_in, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_classes, 1),  # a 1x1 conv is a per-pixel linear classifier
        )

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        logits = self.body(features)
        if size is not None:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3): parallel dilated 3x3 convolutions.

    x: (N, C_in, H, W) -> (N, C_out, H, W). Branches: a 1x1 conv, one 3x3 conv per rate in
    ``rates`` (dilation = padding = rate, so the size is kept), and optionally the global
    average of the map broadcast back to every position; they are concatenated and mixed
    by a 1x1 conv.
    """

    def __init__(
        self, C_in: int, C_out: int, rates: tuple[int, ...] = (2, 4, 6), *, image_pool: bool = True
    ) -> None:
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        if not isinstance(rates, (tuple, list)) or not rates:
            raise TypeError(f"rates must be a non-empty tuple of ints, got {rates!r}")
        rates = tuple(check_int(f"rates[{i}]", r, minimum=1) for i, r in enumerate(rates))
        self.rates = rates

        def branch(k: int, dilation: int) -> nn.Sequential:
            pad = dilation * (k - 1) // 2
            return nn.Sequential(
                nn.Conv2d(C_in, C_out, k, padding=pad, dilation=dilation, bias=False),
                nn.BatchNorm2d(C_out),
                nn.ReLU(inplace=True),
            )

        self.branches = nn.ModuleList([branch(1, 1)] + [branch(3, r) for r in rates])
        # no BatchNorm on the pooled branch: it has one value per channel and image
        self.pool = (
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(C_in, C_out, 1), nn.ReLU())
            if image_pool
            else None
        )
        n_branches = len(self.branches) + (1 if image_pool else 0)
        self.project = nn.Sequential(
            nn.Conv2d(n_branches * C_out, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        if self.pool is not None:
            outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))
