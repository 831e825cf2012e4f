"""MobileNet blocks (Howard et al., 2017; Sandler et al., 2018): convolutions split in two.

A standard k x k convolution from C_in to C_out channels filters space and mixes
channels at once: ``k^2 * C_in * C_out`` weights. A **depthwise-separable** convolution
does the two jobs one after the other: a depthwise k x k convolution filters each
channel on its own (``groups=C_in``: ``k^2 * C_in`` weights), then a pointwise 1x1
convolution mixes channels (``C_in * C_out``). The cost ratio is
``1 / C_out + 1 / k^2``: about 8 to 9 times cheaper for 3x3 kernels. For 64 -> 128 and
3x3: 576 + 8,192 = 8,768 weights instead of 73,728.

- ``DepthwiseSeparable``: MobileNet v1's block, each convolution followed by BN + ReLU.
- ``InvertedResidual``: MobileNetV2's block. A 1x1 expands the channels (6x), the
  depthwise 3x3 works in that wide space, and a 1x1 projects back down *without* ReLU
  (a "linear bottleneck": ReLU in a narrow space would destroy information). The
  shortcut joins the narrow ends when the shape allows.

The tensors are registered in the same order as torchvision's, so
``cnnbook.models.weights.load_by_position`` moves weights between the two.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_int

__all__ = ["DepthwiseSeparable", "InvertedResidual"]


class DepthwiseSeparable(nn.Module):
    """Depthwise k x k conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU.

    x: (N, C_in, H, W) -> (N, C_out, H_out, W_out), stride on the depthwise convolution.
    """

    def __init__(self, C_in: int, C_out: int, stride: int = 1, k: int = 3):
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        stride = check_int("stride", stride, minimum=1)
        k = check_int("k", k, minimum=1)
        if k % 2 == 0:
            raise ValueError(f"k must be odd so that padding k // 2 centres it, got {k}")
        # groups=C_in: each filter sees one input channel, so space is filtered per channel
        self.depthwise = nn.Conv2d(C_in, C_in, k, stride, padding=k // 2, groups=C_in, bias=False)
        self.bn1 = nn.BatchNorm2d(C_in)
        self.pointwise = nn.Conv2d(C_in, C_out, 1, bias=False)  # mixes channels per pixel
        self.bn2 = nn.BatchNorm2d(C_out)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.depthwise(x)))  # (N, C_in, H_out, W_out)
        return self.relu(self.bn2(self.pointwise(x)))  # (N, C_out, H_out, W_out)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise 3x3, linear 1x1 project (+ x if shapes match).

    x: (N, C_in, H, W) -> (N, C_out, H/stride, W/stride); stride 1 or 2. With
    ``expand_ratio=1`` the expansion is skipped (MobileNetV2's first block).
    """

    def __init__(self, C_in: int, C_out: int, stride: int = 1, expand_ratio: int = 6):
        super().__init__()
        C_in = check_int("C_in", C_in, minimum=1)
        C_out = check_int("C_out", C_out, minimum=1)
        stride = check_int("stride", stride, minimum=1)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        expand_ratio = check_int("expand_ratio", expand_ratio, minimum=1)
        C_mid = C_in * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += [nn.Conv2d(C_in, C_mid, 1, bias=False), nn.BatchNorm2d(C_mid), nn.ReLU6()]
        layers += [
            nn.Conv2d(C_mid, C_mid, 3, stride, padding=1, groups=C_mid, bias=False),
            nn.BatchNorm2d(C_mid),
            nn.ReLU6(),
            nn.Conv2d(C_mid, C_out, 1, bias=False),  # project: no activation after it
            nn.BatchNorm2d(C_out),
        ]
        self.block = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and C_in == C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_shortcut else out
