"""Squeeze-and-Excitation (Hu, Shen and Sun, 2017): let the network reweight its channels.

A convolution treats every channel of its input the same, whatever the image. An SE
block computes one weight per channel from the image itself:

1. **squeeze**: global average pooling summarises each channel by one number, (N, C);
2. **excitation**: a small MLP, C -> C / r -> C with ReLU then sigmoid, turns those
   numbers into gates in (0, 1);
3. **scale**: each channel of the input is multiplied by its gate.

It adds ``2 * C^2 / r + C / r + C`` parameters (r = 16 in the paper) and almost no
computation, and fits after any block (in SE-ResNet, on the residual branch before the
addition).

``SpatialAttention`` is the complementary gate of CBAM (Woo et al., 2018): one weight per
*position* instead of per channel, computed from the channel-wise mean and maximum.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnbook._checks import check_int

__all__ = ["SpatialAttention", "SqueezeExcitation"]


class SqueezeExcitation(nn.Module):
    """x: (N, C, H, W) -> x * gates, gates: (N, C, 1, 1) in (0, 1).

    The hidden layer has ``max(1, C // reduction)`` units.
    """

    def __init__(self, C: int, reduction: int = 16):
        super().__init__()
        C = check_int("C", C, minimum=1)
        reduction = check_int("reduction", reduction, minimum=1)
        hidden = max(1, C // reduction)
        self.fc1 = nn.Linear(C, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, C)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """The channel weights. x: (N, C, H, W) -> (N, C, 1, 1)."""
        s = x.mean(dim=(2, 3))  # squeeze: (N, C)
        s = torch.sigmoid(self.fc2(self.relu(self.fc1(s))))  # excitation: (N, C)
        return s[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gates(x)  # scale: broadcast over H and W


class SpatialAttention(nn.Module):
    """x: (N, C, H, W) -> x * gate, gate: (N, 1, H, W) in (0, 1); CBAM's spatial gate.

    At every pixel the mean and the maximum over the channels give a (N, 2, H, W) map; one
    ``kernel_size`` x ``kernel_size`` convolution (with "same" padding) turns it into one
    logit per position, and a sigmoid into the gate that multiplies every channel there.
    It has ``2 * kernel_size**2 + 1`` parameters, whatever C is.
    """

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        kernel_size = check_int("kernel_size", kernel_size, minimum=1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for same padding), got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The position weights. x: (N, C, H, W) -> (N, 1, H, W)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))  # (N, 2, H, W) -> (N, 1, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)  # broadcast over the channels
