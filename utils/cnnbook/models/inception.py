"""The Inception module (Szegedy et al., 2014, GoogLeNet): several kernel sizes side by side.

Four branches look at the same input and their outputs are concatenated along the
channels: a 1x1 convolution; a 1x1 "reduce" then a 3x3; a 1x1 reduce then a 5x5; and a
3x3 max pool (stride 1) then a 1x1 "projection". The 1x1 reductions (Network in
Network's idea) shrink the channels before the expensive 3x3 and 5x5 kernels, which is
what keeps the module affordable. Each convolution is followed by ReLU.

The branch sizes are named as in the paper's table: ``c1`` (#1x1), ``c3_reduce``
(#3x3 reduce), ``c3`` (#3x3), ``c5_reduce``, ``c5`` and ``pool_proj``. GoogLeNet's
module "3a" is ``InceptionModule(192, 64, 96, 128, 16, 32, 32)``: 192 -> 256 channels.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_int

__all__ = ["InceptionModule", "conv_unit"]


def conv_unit(C_in: int, C_out: int, k: int, *, batch_norm: bool = False) -> nn.Sequential:
    """k x k convolution with "same" padding (odd k), then ReLU; BatchNorm between if asked.

    x: (N, C_in, H, W) -> (N, C_out, H, W). With BatchNorm the convolution has no bias.
    """
    C_in = check_int("C_in", C_in, minimum=1)
    C_out = check_int("C_out", C_out, minimum=1)
    k = check_int("k", k, minimum=1)
    if k % 2 == 0:
        raise ValueError(f"k must be odd so that padding keeps the size, got {k}")
    if not isinstance(batch_norm, bool):
        raise TypeError(f"batch_norm must be a bool, got {type(batch_norm).__name__}")
    conv = nn.Conv2d(C_in, C_out, k, padding=k // 2, bias=not batch_norm)
    if batch_norm:
        return nn.Sequential(conv, nn.BatchNorm2d(C_out), nn.ReLU(inplace=True))
    return nn.Sequential(conv, nn.ReLU(inplace=True))


class InceptionModule(nn.Module):
    """Four parallel branches, concatenated.

    x: (N, C_in, H, W) -> (N, c1 + c3 + c5 + pool_proj, H, W); channels in branch order.
    """

    def __init__(
        self,
        C_in: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        c5_reduce: int,
        c5: int,
        pool_proj: int,
        *,
        batch_norm: bool = False,
    ):
        super().__init__()
        names = ("C_in", "c1", "c3_reduce", "c3", "c5_reduce", "c5", "pool_proj")
        sizes = (C_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj)
        for name, value in zip(names, sizes, strict=True):
            check_int(name, value, minimum=1)
        bn = batch_norm
        self.branch1 = conv_unit(C_in, c1, 1, batch_norm=bn)
        self.branch3 = nn.Sequential(
            conv_unit(C_in, c3_reduce, 1, batch_norm=bn), conv_unit(c3_reduce, c3, 3, batch_norm=bn)
        )
        self.branch5 = nn.Sequential(
            conv_unit(C_in, c5_reduce, 1, batch_norm=bn), conv_unit(c5_reduce, c5, 5, batch_norm=bn)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), conv_unit(C_in, pool_proj, 1, batch_norm=bn)
        )
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([branch(x) for branch in branches], dim=1)  # stack along channels
